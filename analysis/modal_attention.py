"""Attention over images and audio, as data to draw: patch maps, rollout over patches, and
Whisper's cross-attention as an alignment between output tokens and audio time.

Pure functions over traces (no model, no hooks). Rollout is Abnar & Zuidema 2020 ("Quantifying
Attention Flow in Transformers"), via `analysis.rollout`; the token-to-time alignment reads the
cross-attention of the heads Whisper's authors found to follow time (`alignment_heads` in the
checkpoint's generation config; Radford et al. 2022, used there for word timestamps).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import pandas as pd
import torch

from models.errors import InputError
from models.trace import Trace

from .rollout import attention_rollout

MEAN = "mean"


def _layer(trace_attn: Sequence[torch.Tensor], layer: int, what: str) -> torch.Tensor:
    if not trace_attn:
        raise InputError(f"This trace has no {what}; run the model with capture on.")
    if not 0 <= layer < len(trace_attn):
        raise InputError(f"Layer {layer} is out of range: 0..{len(trace_attn) - 1}.")
    return trace_attn[layer]


def _heads(pattern: torch.Tensor, head: int | str, head_ids: Sequence[int] | None) -> torch.Tensor:
    """(B, T, S) of one head (by original number) or the mean over the layer's heads."""
    if head == MEAN:
        return pattern.float().mean(dim=1)
    ids = list(head_ids) if head_ids is not None else list(range(pattern.shape[1]))
    if head not in ids:
        raise InputError(f"Head {head} is not in this layer (heads present: {ids}).")
    return pattern[:, ids.index(head)].float()


def patch_attention_map(trace: Trace, layer: int, head: int | str = MEAN, query: int = 0,
                        example: int = 0) -> np.ndarray:
    """(rows, cols) attention from position `query` ([CLS] = 0) to each image patch, in grid layout."""
    rows, cols = _grid(trace)
    first = first_patch(trace)
    pattern = _heads(_layer(trace.attentions, layer, "attention"), head, trace.head_ids[layer] if trace.head_ids else None)
    weights = pattern[example, query, first:first + rows * cols]  # (N,) patches only: [CLS] (and [DIST]) left out
    return weights.reshape(rows, cols).numpy()


def patch_rollout_map(trace: Trace, example: int = 0, residual_weight: float = 0.5) -> np.ndarray:
    """(rows, cols) attention rollout from [CLS] to each patch through every layer."""
    rows, cols = _grid(trace)
    first = first_patch(trace)
    rollout = attention_rollout([a[example : example + 1] for a in trace.attentions], residual_weight)  # (1, T, T)
    return rollout[0, 0, first:first + rows * cols].reshape(rows, cols).numpy()


def first_patch(trace: Trace) -> int:
    """The position of the first patch: the number of special tokens before the patches (1 for ViT's [CLS],
    2 for DeiT's [CLS] and distillation token)."""
    return int(trace.extras.get("first_patch", 1))


def _grid(trace: Trace) -> tuple[int, int]:
    grid = trace.extras.get("grid")
    if grid is None:
        raise InputError("This trace is not of an image model (no patch grid).")
    return int(grid[0]), int(grid[1])


@dataclass
class Alignment:
    weights: np.ndarray        # (tokens, positions) cross-attention, rows normalised over the audio part
    tokens: list[str]          # output tokens (rows), without the prompt
    seconds: np.ndarray        # (positions,) start time of each encoder position
    heads: list[tuple[int, int]]  # (layer, head) pairs averaged


def cross_attention_alignment(trace: Trace, heads: Sequence[tuple[int, int]] | str = "alignment",
                              alignment_heads: Sequence[Sequence[int]] | None = None, example: int = 0,
                              include_prompt: bool = False) -> Alignment:
    """Output tokens x audio time, from the mean cross-attention of the chosen (layer, head) pairs.

    `heads` "alignment" uses the checkpoint's alignment heads (all heads of the last layer when it
    has none), "all" every head of every layer, or a list of (layer, head).
    """
    crosses = trace.cross_attentions
    if not crosses:
        raise InputError("This trace has no cross-attention: an encoder-decoder (Whisper) trace is needed.")
    if heads == "alignment":
        chosen = [tuple(h) for h in (alignment_heads or [])] or [(len(crosses) - 1, h) for h in range(crosses[-1].shape[1])]
    elif heads == "all":
        chosen = [(l, h) for l, a in enumerate(crosses) for h in range(a.shape[1])]
    else:
        chosen = [tuple(h) for h in heads]
    n_tokens = trace.lengths[example]
    start = 0 if include_prompt else int(trace.extras.get("prompt_length", 0))
    positions = int(trace.extras.get("audio_positions", [crosses[0].shape[-1]])[example])
    stacks = []
    for layer, head in chosen:
        if not 0 <= layer < len(crosses) or not 0 <= head < crosses[layer].shape[1]:
            raise InputError(f"Cross-attention head ({layer}, {head}) does not exist.")
        stacks.append(crosses[layer][example, head, start:n_tokens, :positions].float())  # (tokens, positions)
    weights = torch.stack(stacks).mean(0)
    weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-12)  # each token's attention over the audio
    step = float(trace.extras.get("seconds_per_position", 0.02))
    return Alignment(weights.numpy(), list(trace.tokens[example][start:n_tokens]),
                     np.arange(positions) * step, [tuple(map(int, h)) for h in chosen])


def token_times(alignment: Alignment) -> pd.DataFrame:
    """Per output token: the time it attends to most, and the attention-weighted mean time."""
    peak = alignment.seconds[alignment.weights.argmax(-1)] if alignment.weights.size else np.zeros(0)
    mean = alignment.weights @ alignment.seconds if alignment.weights.size else np.zeros(0)
    return pd.DataFrame({"token": alignment.tokens, "peak_s": peak, "mean_s": mean})


def audio_self_attention(trace: Trace, layer: int, head: int | str = MEAN, example: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Encoder self-attention over the audio part only: (positions, positions) weights and their times (s)."""
    attn = trace.encoder_attentions
    pattern = _heads(_layer(attn, layer, "encoder attention"), head, None)[example]  # (S, S)
    if "audio_positions" in trace.extras:
        n = int(trace.extras["audio_positions"][example])
    else:
        n = int(trace.lengths[example])
    step = float(trace.extras.get("seconds_per_position", 0.02))
    return pattern[:n, :n].numpy(), np.arange(n) * step
