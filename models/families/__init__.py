"""Architecture families. Importing this package registers every family in `FAMILIES`."""
from .base import FAMILIES, Family, family_for_model_type, register, supported_model_types
from . import bert, gpt2, llama  # noqa: F401  (registration side effect)

__all__ = ["FAMILIES", "Family", "family_for_model_type", "register", "supported_model_types"]
