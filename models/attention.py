"""Multi-head self-attention written out by hand, with the head axis explicit and every step hooked.

One module serves every family: grouped-query attention is a map from each query head to its
key/value head (`kv_index`), which also lets pruning keep any subset of heads per layer.
The capture path computes the pattern explicitly; the fast path uses PyTorch's fused
scaled-dot-product attention and gives the same numbers when nothing needs to be read.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from .deferred_patterns import DEFERRED, PendingPattern
from .hooks import HookPoint, is_hooked
from .pattern_math import attention_scores, scale_heads, softmax_pattern
from .rotary import apply_rotary, apply_rotary_interleaved


class ProjectionNorm(nn.Module):
    """RMSNorm over a whole query or key projection, every head together (OLMo 2), in float32 as OLMo 2 computes it.

    The statistic counts every original head, so after pruning `pruned_rows` keeps the removed heads' rows of the
    projection (their outputs are dropped; only their squares still enter the mean): a pruned model equals the
    masked one, at the cost of computing those rows."""

    def __init__(self, width: int, eps: float, d_in: int = 0, removed: int = 0, bias: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(width))
        self.eps = eps
        self.pruned_rows = nn.Linear(d_in, removed, bias=bias) if removed else None

    def forward(self, projected: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        """`projected` (B, T, W) the kept heads' rows of the projection of `source` (B, T, d)."""
        p32 = projected.float()
        if self.pruned_rows is None:
            variance = p32.pow(2).mean(-1, keepdim=True)  # (B, T, 1)
        else:
            rest = self.pruned_rows(source).float()  # (B, T, removed)
            width = p32.shape[-1] + rest.shape[-1]
            variance = (p32.pow(2).sum(-1, keepdim=True) + rest.pow(2).sum(-1, keepdim=True)) / width  # (B, T, 1)
        return (self.weight * (p32 * torch.rsqrt(variance + self.eps))).to(projected.dtype)

    @torch.no_grad()
    def cut(self, keep: torch.Tensor, drop: torch.Tensor, projection: nn.Linear) -> "ProjectionNorm":
        """The norm once `projection` keeps only rows `keep`: rows `drop` join the pruned rows."""
        earlier = [self.pruned_rows] if self.pruned_rows is not None else []
        weight = torch.cat([projection.weight[drop]] + [rows.weight for rows in earlier])  # (removed, d)
        bias = projection.bias is not None
        new = ProjectionNorm(len(keep), self.eps, projection.in_features, weight.shape[0], bias).to(self.weight.dtype)
        new.weight.copy_(self.weight[keep])
        if new.pruned_rows is not None:
            new.pruned_rows.weight.copy_(weight)
            if bias:
                new.pruned_rows.bias.copy_(torch.cat([projection.bias[drop]] + [rows.bias for rows in earlier]))
        return new


class Attention(nn.Module):
    def __init__(
        self,
        d_model: int,
        d_head: int,
        kv_index: list[int],      # for each query head, the index of the key/value head it reads
        n_kv_heads: int,
        qkv_bias: bool,
        output_bias: bool,
        head_ids: list[int] | None = None,  # original head numbers, so pruned layers keep their names
        d_kv_source: int | None = None,     # width keys and values are read from (an encoder's), if not d_model
        scale: float | None = None,         # on the scores; None: 1 / sqrt(d_head)
        softcap: float | None = None,       # Gemma 2: scores = softcap * tanh(scores / softcap)
        qk_norm: Callable[[], nn.Module] | None = None,  # makes a norm over one head (Qwen 3, Gemma 3 q/k norms)
        interleaved_rotary: bool = False,   # GPT-J's rotary layout
    ) -> None:
        super().__init__()
        n_heads = len(kv_index)
        self.d_head = d_head
        self.scale = scale if scale is not None else 1.0 / math.sqrt(d_head)
        self.softcap = softcap
        self.interleaved_rotary = interleaved_rotary
        self.qk_norm = qk_norm
        # one norm shared by every head (its weight is (d_head,)), so pruning heads leaves it as it is
        self.q_norm = qk_norm() if qk_norm is not None else None
        self.k_norm = qk_norm() if qk_norm is not None else None
        self.whole_projection_norm = False  # see norm_whole_projections
        self.n_heads = n_heads
        self.n_kv_heads = n_kv_heads
        self.head_ids = list(head_ids) if head_ids is not None else list(range(n_heads))
        with warnings.catch_warnings():  # a layer with every head pruned has empty projections, by design
            warnings.filterwarnings("ignore", message="Initializing zero-element tensors is a no-op")
            self.q_proj = nn.Linear(d_model, n_heads * d_head, bias=qkv_bias)
            self.k_proj = nn.Linear(d_kv_source or d_model, n_kv_heads * d_head, bias=qkv_bias)
            self.v_proj = nn.Linear(d_kv_source or d_model, n_kv_heads * d_head, bias=qkv_bias)
            self.o_proj = nn.Linear(n_heads * d_head, d_model, bias=output_bias)
        self.register_buffer("kv_index", torch.tensor(kv_index, dtype=torch.long), persistent=False)
        self.uniform_groups = kv_index == [h // max(1, n_heads // max(1, n_kv_heads)) for h in range(n_heads)]
        # plain multi-head attention: head h reads key/value head h, so no gather (and no scatter in backward)
        self.own_kv = kv_index == list(range(n_heads)) and n_kv_heads == n_heads
        self.hook_q = HookPoint("(B, T, H, dh) after rotary")
        self.hook_k = HookPoint("(B, S, KV, dh) after rotary; S = T in self-attention")
        self.hook_v = HookPoint("(B, S, KV, dh)")
        self.hook_attn_scores = HookPoint("(B, H, T, S) before softmax, masked")
        self.hook_pattern = HookPoint("(B, H, T, S) attention weights")
        self.hook_z = HookPoint("(B, T, H, dh) per-head output, after head masking")

    def forward(
        self,
        x: torch.Tensor,                           # (B, T, d)
        mask: torch.Tensor | None,                 # additive (B, 1, T or 1, T); None = attend everywhere
        rotary: tuple[torch.Tensor, torch.Tensor] | None,
        head_scale: torch.Tensor | None,           # (H,) or per example (B, H): multiplies each head's output; 0 masks it
        capture: bool | str,                       # True: compute the pattern; DEFERRED: keep what computes it later
        kv: torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None = None,
        cache: dict[str, torch.Tensor] | None = None,  # decoding cache of this layer's past keys/values, extended here
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`kv` None is self-attention; a (B, S, d) tensor is cross-attention (keys and values from an
        encoder); a (k, v) pair of (B, S, KV, dh) is already projected (an encoder's or a decoding cache)."""
        B, T, _ = x.shape
        if cache is not None and kv is None and self.n_heads > 0:
            # generation: project only the new positions, append them to the keys/values of the past
            k_new, v_new = self.project_kv(x, rotary)
            if "k" in cache:
                k_new, v_new = torch.cat([cache["k"], k_new], dim=1), torch.cat([cache["v"], v_new], dim=1)
            cache["k"], cache["v"] = k_new, v_new  # (B, past + T, KV, dh)
            kv = (k_new, v_new)
        S = T if kv is None else (kv[0].shape[1] if isinstance(kv, tuple) else kv.shape[1])
        if self.n_heads == 0:  # every head pruned: only the output bias is left, as in transformers 4.x
            empty = x.new_zeros(B, T, 0)
            return self.o_proj(empty), (x.new_zeros(B, 0, T, S) if capture else None)
        q = self.q_proj(x)  # (B, T, H * dh)
        if self.whole_projection_norm:
            q = self.q_norm(q, x)
        q = q.view(B, T, self.n_heads, self.d_head)  # (B, T, H, dh)
        if self.q_norm is not None and not self.whole_projection_norm:
            q = self.q_norm(q)
        if rotary is not None:
            q = self._rotate(q, rotary)
        q = self.hook_q(q)
        k, v = kv if isinstance(kv, tuple) else self.project_kv(x if kv is None else kv, rotary if kv is None else None)
        # each query head reads its own key/value head: (B, H, T, dh)
        q_h = q.transpose(1, 2)
        if self.own_kv:
            k_h, v_h = k.transpose(1, 2), v.transpose(1, 2)
        else:
            k_h = k.index_select(2, self.kv_index).transpose(1, 2)
            v_h = v.index_select(2, self.kv_index).transpose(1, 2)
        scale = self.scale
        pattern = None
        # a hook on the scores or the pattern must see them during the forward, so it cannot be deferred
        defer = capture == DEFERRED and not (is_hooked(self.hook_attn_scores) or is_hooked(self.hook_pattern))
        captured = capture and not defer
        if captured or self.softcap is not None:  # soft-capped scores have no fused kernel: explicit either way
            scores = attention_scores(q_h, k_h, mask, scale, self.softcap)  # (B, H, T, S)
            probs = softmax_pattern(self.hook_attn_scores(scores) if captured else scores, q.dtype)  # (B, H, T, S)
            if captured:
                probs = pattern = self.hook_pattern(probs)
            elif defer:
                pattern = PendingPattern(q_h, k_h, mask, scale, None, self.softcap)
            z = torch.matmul(probs, v_h)  # (B, H, T, dh)
        else:
            z = F.scaled_dot_product_attention(q_h, k_h, v_h, attn_mask=mask, scale=scale)  # (B, H, T, dh)
            if defer:
                pattern = PendingPattern(q_h, k_h, mask, scale, None)
        z = z.transpose(1, 2)  # (B, T, H, dh)
        if head_scale is not None:
            # a (B, H) scale lets one batch carry a different mask per example (batched ablation, per-example gradients)
            per_example = head_scale.to(z.dtype).reshape(-1, self.n_heads)  # (B or 1, H)
            z = z * per_example[:, None, :, None]
            if isinstance(pattern, PendingPattern):
                pattern.head_scale = per_example
            elif pattern is not None:  # report what transformers 4.x reports under head_mask
                pattern = scale_heads(pattern, per_example)
        z = self.hook_z(z)
        out = self.o_proj(z.reshape(B, T, self.n_heads * self.d_head))  # (B, T, d)
        return out, pattern

    def attend_at(self, queries: torch.Tensor, x: torch.Tensor, mask: torch.Tensor | None,
                  rotary: tuple[torch.Tensor, torch.Tensor] | None, head_scale: torch.Tensor | None,
                  capture: bool | str) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Self-attention output at positions `queries` only, each attending to every key of `x` (B, T, d)."""
        kv = self.project_kv(x, rotary)  # keys and values at every position
        rotary_q = None if rotary is None else tuple(r[:, queries] for r in rotary)
        mask_q = mask if mask is None or mask.shape[2] == 1 else mask[:, :, queries]
        return self(x[:, queries], mask_q, rotary_q, head_scale, capture, kv=kv)

    def project_kv(self, source: torch.Tensor,
                   rotary: tuple[torch.Tensor, torch.Tensor] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values (B, S, KV, dh) of `source` (B, S, d), hooked; computed once per encoder output or step."""
        B, S, _ = source.shape
        k = self.k_proj(source)  # (B, S, KV * dh)
        if self.whole_projection_norm:
            k = self.k_norm(k, source)
        k = k.view(B, S, self.n_kv_heads, self.d_head)  # (B, S, KV, dh)
        v = self.v_proj(source).view(B, S, self.n_kv_heads, self.d_head)  # (B, S, KV, dh)
        if self.k_norm is not None and not self.whole_projection_norm:
            k = self.k_norm(k)
        if rotary is not None:
            k = self._rotate(k, rotary)
        return self.hook_k(k), self.hook_v(v)

    def norm_whole_projections(self, eps: float, removed_heads: int = 0, removed_kv_heads: int = 0) -> "Attention":
        """OLMo 2: RMS-normalise q and k over the whole projection (every head together), not per head. A layer
        read from a pruned checkpoint says how many query and key/value heads it lost, for their kept rows
        (`ProjectionNorm.pruned_rows`). Called once on a fresh module, before its weights load; returns it."""
        bias = self.q_proj.bias is not None
        self.q_norm = ProjectionNorm(self.n_heads * self.d_head, eps, self.q_proj.in_features,
                                     removed_heads * self.d_head, bias)
        self.k_norm = ProjectionNorm(self.n_kv_heads * self.d_head, eps, self.k_proj.in_features,
                                     removed_kv_heads * self.d_head, bias)
        self.whole_projection_norm = True
        return self

    def _rotate(self, x: torch.Tensor, rotary: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return apply_rotary_interleaved(x, *rotary) if self.interleaved_rotary else apply_rotary(x, *rotary)

    @torch.no_grad()
    def without_heads(self, local_heads: list[int]) -> "Attention":
        """A copy with the given local head positions removed; a key/value head goes once no query head reads it."""
        keep = [h for h in range(self.n_heads) if h not in set(local_heads)]
        kv_kept = sorted({int(self.kv_index[h]) for h in keep})
        kv_new_index = {old: new for new, old in enumerate(kv_kept)}
        d = self.d_head
        new = Attention(
            d_model=self.q_proj.in_features,
            d_head=d,
            d_kv_source=self.k_proj.in_features,
            kv_index=[kv_new_index[int(self.kv_index[h])] for h in keep],
            n_kv_heads=len(kv_kept),
            qkv_bias=self.q_proj.bias is not None,
            output_bias=self.o_proj.bias is not None,
            head_ids=[self.head_ids[h] for h in keep],
            scale=self.scale, softcap=self.softcap, qk_norm=self.qk_norm, interleaved_rotary=self.interleaved_rotary,
        ).to(self.q_proj.weight.dtype)
        q_rows = _head_rows(keep, d)
        kv_rows = _head_rows(kv_kept, d)
        if self.whole_projection_norm:  # the removed heads' rows stay for the norm's statistic
            new.whole_projection_norm = True
            kv_dropped = [g for g in range(self.n_kv_heads) if g not in kv_kept]
            new.q_norm = self.q_norm.cut(q_rows, _head_rows(sorted(set(local_heads)), d), self.q_proj)
            new.k_norm = self.k_norm.cut(kv_rows, _head_rows(kv_dropped, d), self.k_proj)
        elif self.q_norm is not None:
            new.q_norm.load_state_dict(self.q_norm.state_dict())
            new.k_norm.load_state_dict(self.k_norm.state_dict())
        new.q_proj.weight.copy_(self.q_proj.weight[q_rows])
        new.k_proj.weight.copy_(self.k_proj.weight[kv_rows])
        new.v_proj.weight.copy_(self.v_proj.weight[kv_rows])
        if self.q_proj.bias is not None:
            new.q_proj.bias.copy_(self.q_proj.bias[q_rows])
            new.k_proj.bias.copy_(self.k_proj.bias[kv_rows])
            new.v_proj.bias.copy_(self.v_proj.bias[kv_rows])
        new.o_proj.weight.copy_(self.o_proj.weight[:, q_rows])
        if self.o_proj.bias is not None:
            new.o_proj.bias.copy_(self.o_proj.bias)
        return new


def _head_rows(heads: list[int], d_head: int) -> torch.Tensor:
    """Row indices of the given heads in a (heads * d_head, ...) projection."""
    if not heads:
        return torch.zeros(0, dtype=torch.long)
    return torch.cat([torch.arange(h * d_head, (h + 1) * d_head) for h in heads])
