"""An encoder-decoder's decoder output over its whole generated sequence, joined from the decoding steps.

Greedy decoding with the key/value cache already computes every decoder state and logit of the
output, one position per step; with deferred patterns each step also keeps its query heads and
the keys it read (the cache: every earlier position). Joining the steps along the sequence gives
what a second, teacher-forced decoder pass over the output gives (the same arithmetic, up to the
float rounding of other matrix shapes), so a pipeline's trace costs one more one-token step instead
of that pass, which transformers' pipelines never run. models/generation_trace.py does the same
for causal LMs; this one also joins cross-attention and keeps each step's own mask (and T5's
position bias, which the masks carry).
"""
from __future__ import annotations

from typing import Sequence

import torch

from .deferred_patterns import PendingPattern
from .transformer import ForwardOutput


def _padded_masks(pending: Sequence[PendingPattern], width: int) -> torch.Tensor | None:
    """Each step's additive mask (1, H|1, 1, S_t), hidden beyond its S_t keys, stacked into (1, H|1, T, width)."""
    if all(p.mask is None for p in pending):
        return None
    rows = []
    for p in pending:
        mask = p.mask
        if mask is None:  # a step that attended everywhere
            mask = p.q.new_zeros(1, 1, 1, p.k.shape[2])
        hidden = width - mask.shape[-1]
        if hidden:
            mask = torch.cat([mask, mask.new_full((*mask.shape[:-1], hidden), torch.finfo(mask.dtype).min)], dim=-1)
        rows.append(mask)
    heads = max(m.shape[1] for m in rows)
    return torch.cat([m.expand(-1, heads, -1, -1) for m in rows], dim=2)


def _joined_patterns(steps: Sequence[ForwardOutput], cross: bool) -> list[PendingPattern] | None:
    layers = []
    for layer in range(len(steps[0].attentions)):
        pending = [(step.cross_attentions if cross else step.attentions)[layer] for step in steps]
        if not all(isinstance(p, PendingPattern) for p in pending):
            return None  # a hook made a step compute its pattern: the caller runs the decoder again
        last = pending[-1]
        layers.append(PendingPattern(
            q=torch.cat([p.q for p in pending], dim=2),  # (1, H, T, dh): each step's one new query
            k=last.k,  # (1, H, S, dh): the encoder's keys, or the cache after the last step (every position)
            mask=_padded_masks(pending, last.k.shape[2]),
            scale=last.scale, head_scale=last.head_scale, softcap=last.softcap))
    return layers


def joined_decoder_output(steps: Sequence[ForwardOutput], position_bias: torch.Tensor | None = None
                          ) -> ForwardOutput | None:
    """The decoder's ForwardOutput over every position the one-row `steps` ran, or None when it cannot be joined
    (patterns computed during a step). `position_bias` (1, H, T, T): the decoder's own, for the trace."""
    if not steps or steps[0].final.shape[0] != 1:
        return None
    patterns = _joined_patterns(steps, cross=False)
    crosses = _joined_patterns(steps, cross=True) if steps[0].cross_attentions else []
    if patterns is None or crosses is None:
        return None
    join = lambda tensors: torch.cat(list(tensors), dim=1)  # noqa: E731 - along the sequence axis
    out = ForwardOutput(
        resid=[join(step.resid[i] for step in steps) for i in range(len(steps[0].resid))],
        attentions=patterns, resid_final=join(s.resid_final for s in steps), final=join(s.final for s in steps),
        logits=join(s.logits for s in steps), cross_attentions=crosses)
    if position_bias is not None:
        out.extras["position_bias"] = position_bias
    return out
