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
    "quick_gelu": lambda x: x * torch.sigmoid(1.702 * x),  # CLIP's sigmoid approximation of GELU
}


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019), computed in float32 as Llama does. With `unit_offset`
    (Gemma) the weight is stored as an offset from 1 and applied in float32 before the cast back."""

    def __init__(self, d: int, eps: float, unit_offset: bool = False) -> None:
        super().__init__()
        self.unit_offset = unit_offset
        self.weight = nn.Parameter(torch.zeros(d) if unit_offset else torch.ones(d))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x32 = x.float()
        normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.unit_offset:
            return (normed * (1.0 + self.weight.float())).to(x.dtype)
        return self.weight * normed.to(x.dtype)


def make_norm(kind: str, d: int, eps: float) -> nn.Module:
    """"layer" (LayerNorm), "rms" (Llama's RMSNorm) or "rms_offset" (Gemma's, weight 1 + w)."""
    if kind == "layer":
        return nn.LayerNorm(d, eps=eps)
    if kind in ("rms", "rms_offset"):
        return RMSNorm(d, eps, unit_offset=kind == "rms_offset")
    raise ValueError(f"Unknown norm kind {kind!r}")


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


NORM_LAYOUTS = ("pre", "post", "sandwich", "post_sublayer")
PARALLEL_LAYOUTS = (None, "shared_norm", "two_norms")


class Block(nn.Module):
    """One transformer layer, in one of these layouts (each sublayer's output `s` joins the residual stream x):

    - "pre" (GPT-2, Llama): x + s(ln(x));  "post" (BERT): ln(x + s(x));
    - "sandwich" (Gemma 2 and 3): x + ln_post(s(ln(x)));  "post_sublayer" (OLMo 2): x + ln_post(s(x));
    - `parallel` (GPT-J, Phi, Falcon: "shared_norm"; GPT-NeoX: "two_norms"): attention and MLP both read the
      block input, x + attn(ln1(x)) + mlp(ln1(x) or ln2(x)).
    `residual_scale` (Granite) multiplies each sublayer's output. With `cross_attn` (an encoder-decoder's
    decoder) the layer attends to the encoder's output between self-attention and the MLP (`ln_cross`)."""

    def __init__(self, attn: Attention, mlp: nn.Module, norm_kind: str, d_model: int, eps: float, norm_first: bool,
                 cross_attn: Attention | None = None, norms: str | None = None, parallel: str | None = None,
                 residual_scale: float = 1.0) -> None:
        super().__init__()
        self.norms = norms or ("pre" if norm_first else "post")
        if self.norms not in NORM_LAYOUTS or parallel not in PARALLEL_LAYOUTS:
            raise ValueError(f"Unknown block layout {self.norms!r} / parallel {parallel!r}")
        self.norm_first = self.norms != "post"
        self.parallel = parallel
        self.residual_scale = residual_scale
        self.attn = attn
        self.cross_attn = cross_attn
        self.mlp = mlp
        norm = lambda: make_norm(norm_kind, d_model, eps)  # noqa: E731
        self.ln1 = norm() if self.norms != "post_sublayer" else None
        self.ln_cross = norm() if cross_attn is not None else None
        self.ln2 = norm() if self.norms != "post_sublayer" and parallel != "shared_norm" else None
        if self.norms in ("sandwich", "post_sublayer"):
            self.ln1_post = norm()
            self.ln2_post = norm()
        self.hook_resid_pre = HookPoint("(B, T, d) block input")
        self.hook_attn_out = HookPoint("(B, T, d) attention's contribution to the residual stream")
        self.hook_resid_mid = HookPoint("(B, T, d) after attention and its residual (parallel: not the MLP's input)")
        if cross_attn is not None:
            self.hook_cross_out = HookPoint("(B, T, d) cross-attention output after projection")
            self.hook_resid_cross = HookPoint("(B, T, d) after cross-attention and its residual")
        self.hook_mlp_out = HookPoint("(B, T, d) MLP's contribution to the residual stream")
        self.hook_resid_post = HookPoint("(B, T, d) block output")

    def forward(self, x, mask, rotary, head_scale, capture, cache=None, queries=None, cross=None):
        """Returns (output, self-attention pattern, cross-attention pattern or None).

        `queries` (a LongTensor of positions): compute this block's output at those positions only, each
        attending to every key; for a last layer of which only some outputs are read (see TransformerModel).
        `cross`: (the encoder output or its keys and values, its additive mask, head scale) for `cross_attn`."""
        x = self.hook_resid_pre(x)
        if self.norms == "post":
            attn_out, pattern = self._attend(x, mask, rotary, head_scale, capture, cache, queries)
            x = x if queries is None else x[:, queries]
            mid = self.hook_resid_mid(self.ln1(x + self.hook_attn_out(attn_out)))
            mid, cross_pattern = self._cross(mid, cross, capture)
            out = self.ln2(mid + self.hook_mlp_out(self.mlp(mid)))
            return self.hook_resid_post(out), pattern, cross_pattern
        h = self.ln1(x) if self.ln1 is not None else x
        attn_out, pattern = self._attend(h, mask, rotary, head_scale, capture, cache, queries)
        if queries is not None:
            x, h = x[:, queries], h[:, queries]
        attn_out = self.hook_attn_out(self._scaled(attn_out, "ln1_post"))
        mid = self.hook_resid_mid(x + attn_out)
        if self.parallel is not None:  # the MLP reads the block input, not the residual after attention
            mlp_in = h if self.parallel == "shared_norm" else self.ln2(x)
            out = mid + self.hook_mlp_out(self._scaled(self.mlp(mlp_in), "ln2_post"))
            return self.hook_resid_post(out), pattern, None
        mid, cross_pattern = self._cross(mid, cross, capture)
        mlp_in = self.ln2(mid) if self.ln2 is not None else mid
        out = mid + self.hook_mlp_out(self._scaled(self.mlp(mlp_in), "ln2_post"))
        return self.hook_resid_post(out), pattern, cross_pattern

    def _scaled(self, sublayer_out: torch.Tensor, post_norm: str) -> torch.Tensor:
        """A sublayer's output as it joins the residual stream: after its post-norm, times the residual scale."""
        if self.norms in ("sandwich", "post_sublayer"):
            sublayer_out = getattr(self, post_norm)(sublayer_out)
        return sublayer_out * self.residual_scale if self.residual_scale != 1.0 else sublayer_out

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
        return self.attn.attend_at(queries, h, mask, rotary, head_scale, capture)
