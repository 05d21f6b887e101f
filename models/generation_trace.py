"""The trace of a generated text, assembled from the decoding steps instead of a second pass over it.

Greedy decoding with a key/value cache already computes, step by step, every hidden state and
logit of the prompt and the new tokens; run with deferred patterns it also keeps each step's
query heads, and the last step's cache holds every key. Joining the steps along the sequence
gives the trace a full forward over prompt + continuation would give (same arithmetic, up to
float rounding of the different matrix shapes), for the price of one more one-token step.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import torch

from .deferred_patterns import DeferredPatterns, PendingPattern
from .trace import Trace
from .config import ModelConfig
from .transformer import ForwardOutput, attention_masks

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel


def joined_patterns(cfg: ModelConfig, steps: Sequence[ForwardOutput], length: int,
                    dtype: torch.dtype) -> DeferredPatterns | None:
    """Per layer, one pending causal pattern over all `length` positions; None if a step computed its
    patterns already (a hook on them was active), so the caller must run the text again."""
    masks = attention_masks(cfg, torch.ones(1, length, dtype=torch.long), dtype)  # per layer type: (1, 1, T, T)
    layers = []
    for layer in range(len(steps[0].attentions)):
        pending = [step.attentions[layer] for step in steps]
        if not all(isinstance(p, PendingPattern) for p in pending):
            return None
        last = pending[-1]
        layers.append(PendingPattern(
            q=torch.cat([p.q for p in pending], dim=2),  # (1, H, T, dh): each step's new queries
            k=last.k,  # (1, H, T, dh): the cache after the last step holds every key
            mask=masks[cfg.layer_type(layer)],
            scale=last.scale, head_scale=last.head_scale, softcap=last.softcap))
    return DeferredPatterns(layers)


def trace_from_steps(model: "WorkbenchModel", ids: list[int], steps: Sequence[ForwardOutput]) -> Trace | None:
    """The trace of `ids` (prompt + every new token) from decoding steps that together ran all of them."""
    length = len(ids)
    patterns = joined_patterns(model.config, steps, length, steps[0].final.dtype)
    if patterns is None:
        return None
    join = lambda tensors: torch.cat(list(tensors), dim=1)  # noqa: E731 - along the sequence axis
    hidden = [join(step.resid[i] for step in steps) for i in range(len(steps[0].resid))]
    hidden[-1] = join(step.final for step in steps)  # transformers' last hidden state is after the final norm
    input_ids = torch.tensor([ids])
    tokenizer = model.tokenizer
    tokens = [[tokenizer.id_to_token(i) if tokenizer else str(i) for i in ids]]
    return Trace(tokens=tokens, input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                 hidden_states=tuple(hidden), attentions=patterns, resid_final=join(s.resid_final for s in steps),
                 logits=join(step.logits for step in steps), head_ids=model.head_ids(), model_name=model.name)
