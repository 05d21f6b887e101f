"""Rotary position embedding (Su et al. 2021, "RoFormer"), in the rotate-half layout Llama uses."""
from __future__ import annotations

import torch


def rotary_cos_sin(positions: torch.Tensor, d_head: int, theta: float, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for `positions` (B, T) -> each (B, T, 1, dh), computed in float32 like transformers."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, d_head, 2, dtype=torch.int64).float() / d_head))  # (dh/2,)
    freqs = positions[..., None].float() * inv_freq  # (B, T, dh/2)
    angles = torch.cat([freqs, freqs], dim=-1)  # (B, T, dh)
    return angles.cos().to(dtype)[:, :, None, :], angles.sin().to(dtype)[:, :, None, :]


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, H, dh) queries or keys by their positions."""
    half = x.shape[-1] // 2
    rotated_half = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (B, T, H, dh)
    return x * cos + rotated_half * sin
