"""Rotary position embedding (Su et al. 2021, "RoFormer"): Llama's rotate-half layout, GPT-J's interleaved
pairs, partial rotary (only the first `rotary_dim` dims of each head turn, as in GPT-NeoX and Phi), and every
`rope_scaling` type transformers defines (its modeling_rope_utils.py, computed here the same way, in float32):

- "linear" (kaiokendev 2023): positions interpolated, every angular speed divided by `factor`;
- "dynamic" (NTK-aware, bloc97 / emozilla 2023): the base grows with the current sequence length once it passes
  `max_position_embeddings`, so a decoding step's table depends on how long the text is at that step;
- "yarn" (Peng et al. 2023, "YaRN"): fast dims extrapolated, slow dims interpolated, a linear ramp between, and
  cos/sin multiplied by an attention factor (0.1 ln(factor) + 1 by default);
- "longrope" (Ding et al. 2024, "LongRoPE"; Phi-3): per-dim `short_factor`s up to the original context,
  `long_factor`s past it, and an attention factor sqrt(1 + ln(factor) / ln(original context));
- "llama3" (Llama 3.1): speeds with a wavelength past the original context divided by `factor`, short
  wavelengths kept, a smooth blend between.

The tables are a pure function of the config and the positions: where transformers keeps state between calls
(dynamic's cached length), a fresh transformers model gives these numbers. Keys already in a decoding cache
keep the rotation they were computed with, as in transformers.
"""
from __future__ import annotations

import math
from typing import Any

import torch

from .config import ModelConfig
from .errors import UnsupportedArchitectureError

# rope_type -> the rope_scaling keys its formula cannot do without (transformers' validation requires them too)
ROPE_TYPES: dict[str, tuple[str, ...]] = {
    "default": (),
    "linear": ("factor",),
    "dynamic": ("factor",),
    "yarn": ("factor",),
    "longrope": ("short_factor", "long_factor"),
    "llama3": ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings"),
}


def rope_type(scaling: dict[str, Any] | None) -> str:
    """The type a `rope_scaling` dict names ("type" is its pre-2024 spelling); "default" for none at all."""
    if not scaling:
        return "default"
    return scaling.get("rope_type", scaling.get("type")) or "missing"


def check_rope_scaling(scaling: dict[str, Any] | None, hf: dict[str, Any] | None = None) -> None:
    """Refuse a `rope_scaling` these formulas do not compute: an unknown type, or one without the keys its formula
    reads. `hf` (the whole config) settles longrope's factor, which may come from the context lengths instead."""
    kind = rope_type(scaling)
    if kind not in ROPE_TYPES:
        raise UnsupportedArchitectureError(
            f"rope_scaling={scaling!r} is not supported: rope_type {kind!r} is none of {', '.join(ROPE_TYPES)}.")
    missing = [key for key in ROPE_TYPES[kind] if scaling.get(key) is None]
    if kind == "longrope" and scaling.get("factor") is None and not (hf or {}).get("original_max_position_embeddings"):
        missing.append("factor")  # nor original_max_position_embeddings to derive it from
    if missing:
        raise UnsupportedArchitectureError(
            f"rope_scaling={scaling!r} is not supported: a {kind!r} scaling needs {', '.join(missing)}.")


def scaled_context_length(hf: dict[str, Any]) -> int:
    """The longest text a rotary config is meant for: `max_position_embeddings`, times the factor where
    transformers reads that field as the context before scaling (linear, dynamic, and yarn or longrope when no
    original length says it is already the scaled one)."""
    max_pos = int(hf.get("max_position_embeddings") or 2048)
    scaling = hf.get("rope_scaling") or {}
    kind = rope_type(scaling)
    factor = float(scaling.get("factor") or 1.0)
    if kind in ("linear", "dynamic"):
        return int(max_pos * factor)
    if kind == "yarn" and not scaling.get("original_max_position_embeddings"):
        return int(max_pos * factor)
    if kind == "longrope" and not hf.get("original_max_position_embeddings"):
        return int(max_pos * factor)
    return max_pos


def inverse_frequencies(dim: int, theta: float) -> torch.Tensor:
    """(dim / 2,) angular speeds, computed as transformers computes them."""
    return 1.0 / (theta ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def scaled_inverse_frequencies(cfg: ModelConfig, dim: int, theta: float, seq_len: int,
                               scaling: dict[str, Any] | None) -> tuple[torch.Tensor, float]:
    """(dim / 2,) angular speeds under `scaling` for a text of `seq_len` positions, and the factor cos and sin are
    multiplied by (yarn, longrope; 1 otherwise). Each branch follows transformers' _compute_<type>_parameters."""
    kind = rope_type(scaling)
    if kind == "default":
        return inverse_frequencies(dim, theta), 1.0
    check_rope_scaling(scaling, cfg.hf_config)
    # the lengths transformers reads from the config itself (not from rope_scaling)
    max_pos = int(cfg.hf_config.get("max_position_embeddings") or cfg.max_positions)
    factor = scaling.get("factor")
    if kind == "linear":
        return inverse_frequencies(dim, theta) / factor, 1.0
    if kind == "dynamic":
        if seq_len <= max_pos:  # within the original context the plain speeds hold
            return inverse_frequencies(dim, theta), 1.0
        # float32 tensor arithmetic, as transformers computes it from the tensor max(position_ids) + 1
        length = torch.tensor(seq_len, dtype=torch.int64)
        base = theta * ((factor * length / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)), 1.0
    if kind == "yarn":
        return _yarn(scaling, dim, theta, max_pos)
    if kind == "longrope":
        return _longrope(cfg, scaling, dim, theta, max_pos, seq_len)
    return _llama3(scaling, dim, theta), 1.0


def _yarn(scaling: dict[str, Any], dim: int, theta: float, max_pos: int) -> tuple[torch.Tensor, float]:
    """YaRN: interpolate the slow dims by `factor`, keep the fast ones, ramp linearly between the dims that turn
    `beta_fast` and `beta_slow` times over the original context."""
    factor = scaling["factor"]
    original = scaling.get("original_max_position_embeddings") or max_pos

    def mscale(scale: float, m: float = 1.0) -> float:
        return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        m, m_all = scaling.get("mscale"), scaling.get("mscale_all_dim")
        attention_factor = float(mscale(factor, m) / mscale(factor, m_all)) if m and m_all else mscale(factor)
    beta_fast = scaling.get("beta_fast") or 32
    beta_slow = scaling.get("beta_slow") or 1

    def correction_dim(rotations: float) -> float:  # the dim that turns `rotations` times over the context
        return (dim * math.log(original / (rotations * 2 * math.pi))) / (2 * math.log(theta))

    low, high = correction_dim(beta_fast), correction_dim(beta_slow)
    if scaling.get("truncate", True):
        low, high = math.floor(low), math.ceil(high)
    low, high = max(low, 0), min(high, dim - 1)
    if low == high:
        high += 0.001  # no zero-width ramp
    ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)  # (dim/2,)
    pos_freqs = theta ** (torch.arange(0, dim, 2).float() / dim)
    extrapolation = 1 - ramp  # 1: keep the speed (fast dims), 0: interpolate it (slow dims)
    inv_freq = (1.0 / (factor * pos_freqs)) * (1 - extrapolation) + (1.0 / pos_freqs) * extrapolation
    return inv_freq, attention_factor


def _longrope(cfg: ModelConfig, scaling: dict[str, Any], dim: int, theta: float, max_pos: int,
              seq_len: int) -> tuple[torch.Tensor, float]:
    """LongRoPE: speeds divided per dim by the short factors within the original context, by the long ones past
    it. Phi-3 states the original context at the top level of its config (and the factor as the ratio)."""
    original = cfg.hf_config.get("original_max_position_embeddings")
    if original:
        factor = max_pos / original
    else:
        original, factor = max_pos, scaling.get("factor")
    attention_factor = scaling.get("attention_factor")
    if attention_factor is None:
        attention_factor = 1.0 if factor <= 1.0 else math.sqrt(1 + math.log(factor) / math.log(original))
    chosen = scaling["long_factor"] if seq_len > original else scaling["short_factor"]
    ext_factors = torch.tensor(chosen, dtype=torch.float32)  # (dim/2,)
    shape = torch.arange(0, dim, 2, dtype=torch.int64).float() / dim
    return 1.0 / (ext_factors * theta ** shape), attention_factor


def _llama3(scaling: dict[str, Any], dim: int, theta: float) -> torch.Tensor:
    """Llama 3.1: wavelengths longer than original / low_freq_factor are divided by `factor`, those shorter
    than original / high_freq_factor kept, the ones between blended smoothly."""
    inv_freq = inverse_frequencies(dim, theta)
    factor, low_f, high_f = scaling["factor"], scaling["low_freq_factor"], scaling["high_freq_factor"]
    original = scaling["original_max_position_embeddings"]
    low_wavelen, high_wavelen = original / low_f, original / high_f
    wavelen = 2 * math.pi / inv_freq
    scaled = torch.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (original / wavelen - low_f) / (high_f - low_f)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) * ~(wavelen > low_wavelen)
    return torch.where(medium, smoothed, scaled)


def rotary_cos_sin(positions: torch.Tensor, inv_freq: torch.Tensor, dtype: torch.dtype, interleaved: bool = False,
                   attention_factor: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for `positions` (B, T) at speeds `inv_freq` (dim/2,) -> each (B, T, 1, dim), computed in
    float32 like transformers and multiplied by `attention_factor` before the cast. Interleaved (GPT-J) repeats
    each angle for its pair of dims."""
    freqs = positions[..., None].float() * inv_freq  # (B, T, dim/2)
    angles = freqs.repeat_interleave(2, dim=-1) if interleaved else torch.cat([freqs, freqs], dim=-1)  # (B, T, dim)
    cos, sin = angles.cos(), angles.sin()
    if attention_factor != 1.0:
        cos, sin = cos * attention_factor, sin * attention_factor
    return cos.to(dtype)[:, :, None, :], sin.to(dtype)[:, :, None, :]


def rotary_tables(cfg: ModelConfig, positions: torch.Tensor, dtype: torch.dtype) -> dict[str, tuple[torch.Tensor, ...]]:
    """Per layer type ("full_attention", "sliding_attention"), the cos and sin tables its layers rotate by.

    The length the scaled types depend on is the text's so far, max(positions) + 1: in a decoding step, the past
    and the new tokens (as transformers' dynamic_rope_update reads it). Local layers with a base of their own
    (Gemma 3) use plain rotary, as transformers builds them."""
    check_rope_scaling(cfg.rope_scaling, cfg.hf_config)
    dim = cfg.rotary_dim or cfg.d_head
    seq_len = int(positions.max()) + 1 if positions.numel() else 0
    kinds = set(cfg.layer_types or ("full_attention",))
    tables = {}
    for kind in kinds:
        local = kind == "sliding_attention" and bool(cfg.rope_theta_local)
        theta = cfg.rope_theta_local if local else cfg.rope_theta
        inv_freq, attention_factor = scaled_inverse_frequencies(cfg, dim, theta, seq_len,
                                                                None if local else cfg.rope_scaling)
        tables[kind] = rotary_cos_sin(positions, inv_freq, dtype, cfg.rotary_interleaved, attention_factor)
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
