"""What an image or audio family adds to a text family: its tasks, preprocessor and input preparation.

Registered by each family file in `MODAL_FAMILIES` (model_type -> ModalFamily), read by
`models/modal_loading.py`. A new modality is a new entry, not a branch in the loader.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .config import ModelConfig
from .families.base import Family


@dataclass
class Prepared:
    """Tensors for the network plus what a trace needs to show them."""
    inputs: dict[str, Any]              # keyword arguments of the network's forward (pixel_values, input_values, ...)
    tokens: list[list[str]]             # a label per position (patch or frame), per example
    extras: dict[str, Any]              # images, waveforms, grid, seconds per frame, ...


@dataclass(frozen=True)
class ModalFamily:
    family: Family
    modality: str                                                 # "image" or "audio"
    tasks: dict[str, str]                                         # HF architecture name -> task
    base_architecture: str                                        # HF class of the bare model
    processor: Callable[[Path, ModelConfig], Any]                 # folder -> preprocessor
    prepare: Callable[..., Prepared]                              # (model, inputs, sampling_rate) -> Prepared
    make_pooler: Callable[[ModelConfig], Any] | None = None
    tokenizer: Callable[[Path], Any] | None = None                # folder -> tokenizer or None
    model_class: Callable[..., Any] | None = None                 # WorkbenchModel subclass; None = ModalWorkbenchModel


MODAL_FAMILIES: dict[str, ModalFamily] = {}


def register_modal(model_types: tuple[str, ...], spec: ModalFamily) -> ModalFamily:
    for model_type in model_types:
        MODAL_FAMILIES[model_type] = spec
    return spec
