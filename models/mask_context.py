"""Head masks scoped to a `with` block in this thread's context, so a shared model is never mutated.

One context variable maps id(network) -> {layer key: per-head scales}; nested masks multiply.
Every model class (text, image, audio, Whisper) masks through these two functions.
"""
from __future__ import annotations

import contextlib
import contextvars
from typing import Any, Iterator

import torch
from torch import nn

from .head_selection import combine

_ACTIVE_MASKS: contextvars.ContextVar[dict[int, dict[Any, torch.Tensor]]] = contextvars.ContextVar(
    "workbench_active_masks", default={})


def with_active_masks(network: nn.Module, head_scales: dict | None) -> dict | None:
    """`head_scales` combined with the masks active for `network` in this context."""
    active = _ACTIVE_MASKS.get().get(id(network))
    if active:
        return combine(active, head_scales) if head_scales else active
    return head_scales


@contextlib.contextmanager
def masks_active(network: nn.Module, scales: dict[Any, torch.Tensor]) -> Iterator[None]:
    """Activate `scales` for `network` inside the `with` body only."""
    current = _ACTIVE_MASKS.get()
    merged = dict(current)
    merged[id(network)] = combine(current.get(id(network), {}), scales)
    token = _ACTIVE_MASKS.set(merged)
    try:
        yield
    finally:
        _ACTIVE_MASKS.reset(token)
