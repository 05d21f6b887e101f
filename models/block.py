"""Norms, the MLP and the transformer block, shared by every family (parts before the whole)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import Attention
from .hooks import HookPoint

ACTIVATIONS = {
    "gelu": lambda x: F.gelu(x),                           # BERT: exact erf form
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),   # GPT-2
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": F.silu,                                        # Llama's SwiGLU gate
    "relu": F.relu,
}


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019), computed in float32 as Llama does."""

    def __init__(self, d: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


def make_norm(kind: str, d: int, eps: float) -> nn.Module:
    return RMSNorm(d, eps) if kind == "rms" else nn.LayerNorm(d, eps=eps)


class MLP(nn.Module):
    """fc_out(act(fc_in(x))), or with `gated` the SwiGLU form down(act(gate(x)) * up(x))."""

    def __init__(self, d_model: int, d_mlp: int, activation: str, gated: bool, bias: bool) -> None:
        super().__init__()
        self.gated = gated
        self.act = ACTIVATIONS[activation]
        self.fc_in = nn.Linear(d_model, d_mlp, bias=bias)
        self.gate = nn.Linear(d_model, d_mlp, bias=bias) if gated else None
        self.fc_out = nn.Linear(d_mlp, d_model, bias=bias)
        self.hook_post = HookPoint("(B, T, d_mlp) after the nonlinearity")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gated:
            hidden = self.act(self.gate(x)) * self.fc_in(x)  # (B, T, d_mlp)
        else:
            hidden = self.act(self.fc_in(x))  # (B, T, d_mlp)
        return self.fc_out(self.hook_post(hidden))  # (B, T, d)


class Block(nn.Module):
    """One transformer layer. `norm_first` is the GPT-2/Llama layout; otherwise BERT's post-norm.

    With `cross_attn` (an encoder-decoder's decoder) the layer attends to the encoder's output
    between self-attention and the MLP, with its own norm (`ln_cross`)."""

    def __init__(self, attn: Attention, mlp: MLP, norm_kind: str, d_model: int, eps: float, norm_first: bool,
                 cross_attn: Attention | None = None) -> None:
        super().__init__()
        self.norm_first = norm_first
        self.attn = attn
        self.cross_attn = cross_attn
        self.mlp = mlp
        self.ln1 = make_norm(norm_kind, d_model, eps)
        self.ln_cross = make_norm(norm_kind, d_model, eps) if cross_attn is not None else None
        self.ln2 = make_norm(norm_kind, d_model, eps)
        self.hook_resid_pre = HookPoint("(B, T, d) block input")
        self.hook_attn_out = HookPoint("(B, T, d) attention output after projection")
        self.hook_resid_mid = HookPoint("(B, T, d) after attention and its residual")
        if cross_attn is not None:
            self.hook_cross_out = HookPoint("(B, T, d) cross-attention output after projection")
            self.hook_resid_cross = HookPoint("(B, T, d) after cross-attention and its residual")
        self.hook_mlp_out = HookPoint("(B, T, d) MLP output")
        self.hook_resid_post = HookPoint("(B, T, d) block output")

    def forward(self, x, mask, rotary, head_scale, capture, cache=None, queries=None, cross=None):
        """Returns (output, self-attention pattern, cross-attention pattern or None).

        `queries` (a LongTensor of positions): compute this block's output at those positions only, each
        attending to every key; for a last layer of which only some outputs are read (see TransformerModel).
        `cross`: (the encoder output or its keys and values, its additive mask, head scale) for `cross_attn`."""
        x = self.hook_resid_pre(x)
        if self.norm_first:
            attn_out, pattern = self._attend(self.ln1(x), mask, rotary, head_scale, capture, cache, queries)
            x = x if queries is None else x[:, queries]
            mid = self.hook_resid_mid(x + self.hook_attn_out(attn_out))
            mid, cross_pattern = self._cross(mid, cross, capture)
            out = mid + self.hook_mlp_out(self.mlp(self.ln2(mid)))
        else:
            attn_out, pattern = self._attend(x, mask, rotary, head_scale, capture, cache, queries)
            x = x if queries is None else x[:, queries]
            mid = self.hook_resid_mid(self.ln1(x + self.hook_attn_out(attn_out)))
            mid, cross_pattern = self._cross(mid, cross, capture)
            out = self.ln2(mid + self.hook_mlp_out(self.mlp(mid)))
        return self.hook_resid_post(out), pattern, cross_pattern

    def _cross(self, mid, cross, capture):
        if self.cross_attn is None:
            return mid, None
        kv, mask, scale = cross
        h = self.ln_cross(mid) if self.norm_first else mid
        cross_out, pattern = self.cross_attn(h, mask, None, scale, capture, kv=kv)
        joined = mid + self.hook_cross_out(cross_out)
        return self.hook_resid_cross(joined if self.norm_first else self.ln_cross(joined)), pattern

    def _attend(self, h, mask, rotary, head_scale, capture, cache, queries):
        if queries is None:
            return self.attn(h, mask, rotary, head_scale, capture, cache=cache)
        kv = self.attn.project_kv(h, rotary)  # keys and values at every position
        rotary_q = None if rotary is None else tuple(r[:, queries] for r in rotary)
        mask_q = mask if mask is None or mask.shape[2] == 1 else mask[:, :, queries]
        return self.attn(h[:, queries], mask_q, rotary_q, head_scale, capture, kv=kv)
