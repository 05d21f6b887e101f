"""The instrumented model core. Never imports streamlit: usable from a notebook exactly as from the app."""
from .embedded import embedded_names
from .errors import (HeadIndexError, InputError, ModelNotFoundError, UnsupportedArchitectureError,
                     WeightFileError, WorkbenchError)
from .loading import load_folder, load_model
from .trace import Trace
from .workbench_model import WorkbenchModel
from . import modal_loading  # noqa: F401,E402  (registers the image and audio families' loaders)
from .pipelines import pipeline  # noqa: E402

__all__ = [
    "load_model", "load_folder", "pipeline", "embedded_names", "Trace", "WorkbenchModel",
    "WorkbenchError", "ModelNotFoundError", "UnsupportedArchitectureError", "WeightFileError",
    "InputError", "HeadIndexError",
]
