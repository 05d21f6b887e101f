"""Attention patterns computed when first read, from the query and key heads the forward already made.

A pipeline must return its trace so attention can be shown beside the answer, but most callers
never look at it, and writing every (B, H, T, S) pattern out costs more than the fused attention
itself (Whisper's encoder: 4 layers x 6 heads x 1500 x 1500). With `capture="deferred"` the
forward runs PyTorch's fused attention and keeps, per layer, only the tensors it already had:
the query and key heads (after rotary and hooks), the additive mask and the head scale. Reading
`trace.attentions` then does what the capture path would have done, with the same operations
on the same tensors, so the patterns are identical, not approximations.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch

from .pattern_math import attention_scores, scale_heads, softmax_pattern

DEFERRED = "deferred"  # the `capture` value that asks for patterns on demand


@dataclass
class PendingPattern:
    """One layer's pattern, not yet computed."""
    q: torch.Tensor                      # (B, H, T, dh) query heads
    k: torch.Tensor                      # (B, H, S, dh) key heads, one per query head
    mask: torch.Tensor | None            # additive (B, 1, T or 1, S)
    scale: float                         # 1 / sqrt(dh), or the family's own
    head_scale: torch.Tensor | None      # (B or 1, H) head-mask scales, applied as transformers 4.x reports them
    softcap: float | None = None         # Gemma 2's score soft-capping

    def compute(self) -> torch.Tensor:
        """(B, H, T, S): the capture path's arithmetic (models/pattern_math.py), on the same tensors."""
        pattern = softmax_pattern(attention_scores(self.q, self.k, self.mask, self.scale, self.softcap), self.q.dtype)
        return pattern if self.head_scale is None else scale_heads(pattern, self.head_scale)


class DeferredPatterns:
    """Per-layer patterns, each computed on its first read and kept; `materialize()` gives them all as a tuple."""

    def __init__(self, layers: Sequence[PendingPattern | torch.Tensor]) -> None:
        self._layers = list(layers)

    def __len__(self) -> int:
        return len(self._layers)

    def layer(self, index: int) -> torch.Tensor:
        entry = self._layers[index]
        if isinstance(entry, PendingPattern):
            with torch.no_grad():
                entry = self._layers[index] = entry.compute()
        return entry

    def materialize(self) -> tuple[torch.Tensor, ...]:
        return tuple(self.layer(i) for i in range(len(self._layers)))


def collect(patterns: Sequence[Any]) -> tuple[torch.Tensor, ...] | DeferredPatterns:
    """A forward's per-layer patterns as a trace keeps them: a tuple, or deferred if any layer is pending."""
    if any(isinstance(p, PendingPattern) for p in patterns):
        return DeferredPatterns(patterns)
    return tuple(patterns)


def materialized(value: Any) -> Any:
    """Deferred patterns computed into a tuple; anything else as it is."""
    return value.materialize() if isinstance(value, DeferredPatterns) else value
