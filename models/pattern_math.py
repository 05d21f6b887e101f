"""The arithmetic of an attention pattern, shared by the capture path (models/attention.py) and deferred
patterns (models/deferred_patterns.py), so that the two give the same numbers by construction."""
from __future__ import annotations

import torch


def attention_scores(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None, scale: float,
                     softcap: float | None = None) -> torch.Tensor:
    """(B, H, T, S) scaled dot products of query heads (B, H, T, dh) with key heads (B, H, S, dh), soft-capped
    (Gemma 2: cap * tanh(scores / cap)) if asked, plus the additive mask."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * scale
    if softcap is not None:
        scores = torch.tanh(scores / softcap) * softcap
    return scores if mask is None else scores + mask


def softmax_pattern(scores: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Attention weights over keys, the softmax taken in float32 as transformers does."""
    return torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype)


def scale_heads(pattern: torch.Tensor, per_example: torch.Tensor) -> torch.Tensor:
    """Multiply each head's pattern by its head-mask scale (B or 1, H), as transformers 4.x reports masked heads."""
    return pattern * per_example[:, :, None, None]
