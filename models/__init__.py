"""The instrumented core. Never imports streamlit: usable from a notebook exactly as from the app."""
from .embedded import embedded_names
from .errors import (HeadIndexError, InputError, ModelNotFoundError, UnsupportedArchitectureError,
                     WeightFileError, WorkbenchError)
from .loading import load_folder, load_model
from .pipelines import pipeline
from .trace import Trace
from .workbench_model import WorkbenchModel

__all__ = [
    "load_model", "load_folder", "pipeline", "embedded_names", "Trace", "WorkbenchModel",
    "WorkbenchError", "ModelNotFoundError", "UnsupportedArchitectureError", "WeightFileError",
    "InputError", "HeadIndexError",
]
