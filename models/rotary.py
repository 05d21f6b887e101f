"""Rotary position embedding (Su et al. 2021, "RoFormer"): Llama's rotate-half layout, GPT-J's interleaved
pairs, and partial rotary (only the first `rotary_dim` dims of each head turn, as in GPT-NeoX and Phi)."""
from __future__ import annotations

import torch

from .config import ModelConfig
from .errors import UnsupportedArchitectureError


def inverse_frequencies(dim: int, theta: float) -> torch.Tensor:
    """(dim / 2,) angular speeds, computed as transformers computes them."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rotary_cos_sin(positions: torch.Tensor, d_head: int, theta: float, dtype: torch.dtype,
                   interleaved: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for `positions` (B, T) over `d_head` rotated dims -> each (B, T, 1, d_head), computed in
    float32 like transformers. Interleaved (GPT-J) repeats each angle for its pair of dims."""
    freqs = positions[..., None].float() * inverse_frequencies(d_head, theta)  # (B, T, dh/2)
    angles = freqs.repeat_interleave(2, dim=-1) if interleaved else torch.cat([freqs, freqs], dim=-1)  # (B, T, dh)
    return angles.cos().to(dtype)[:, :, None, :], angles.sin().to(dtype)[:, :, None, :]


def rotary_tables(cfg: ModelConfig, positions: torch.Tensor, dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per layer type ("full_attention", "sliding_attention"), the cos and sin tables its layers rotate by."""
    if cfg.rope_scaling and cfg.rope_scaling.get("rope_type", cfg.rope_scaling.get("type")) not in (None, "default"):
        raise UnsupportedArchitectureError(
            f"rope_scaling {cfg.rope_scaling!r} is not implemented; only plain rotary embeddings are.")
    dim = cfg.rotary_dim or cfg.d_head
    kinds = set(cfg.layer_types or ("full_attention",))
    tables = {}
    for kind in kinds:
        theta = cfg.rope_theta_local if kind == "sliding_attention" and cfg.rope_theta_local else cfg.rope_theta
        tables[kind] = rotary_cos_sin(positions, dim, theta, dtype, cfg.rotary_interleaved)
    return tables


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, T, H, dh) queries or keys by their positions: the first cos.shape[-1] dims turn, the rest pass."""
    rotated_dims = cos.shape[-1]
    if rotated_dims < x.shape[-1]:  # partial rotary
        return torch.cat([apply_rotary(x[..., :rotated_dims], cos, sin), x[..., rotated_dims:]], dim=-1)
    half = rotated_dims // 2
    rotated_half = torch.cat([-x[..., half:], x[..., :half]], dim=-1)  # (B, T, H, dh)
    return x * cos + rotated_half * sin


def apply_rotary_interleaved(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """GPT-J's layout: dims (0, 1), (2, 3), ... turn as pairs; partial as in `apply_rotary`."""
    rotated_dims = cos.shape[-1]
    if rotated_dims < x.shape[-1]:
        return torch.cat([apply_rotary_interleaved(x[..., :rotated_dims], cos, sin), x[..., rotated_dims:]], dim=-1)
    pairs = torch.stack([-x[..., 1::2], x[..., ::2]], dim=-1).flatten(-2)  # (B, T, H, dh)
    return x * cos + pairs * sin
