"""DeBERTa's disentangled attention (He et al. 2021, "DeBERTa: Decoding-enhanced BERT with Disentangled Attention",
section 3.1), as transformers' DebertaV2 computes it.

The score of query i for key j is the sum of three terms, each divided by sqrt(d_head * (1 + number of relative
terms)):
  content  q_i . k_j
  c2p      q_i . Kr[d(i, j)]    the query's content against the key's relative position  (pos_att_type "c2p")
  p2c      k_j . Qr[d(i, j)]    the key's content against the query's relative position  ("p2c")
where Kr and Qr are the shared relative embeddings (LayerNorm'd when norm_rel_ebd says so) projected by this layer
(its own key and query projections with share_att_key, else pos_key_proj and pos_query_proj), and d(i, j) is the
row of i - j: log-bucketed beyond position_buckets / 2, shifted by the span and clipped to the table.

Each term has a hook point (hook_content_scores, hook_c2p_scores, hook_p2c_scores: read or zero it); their sum plus
the mask is hook_attn_scores, whose softmax is the pattern (transformers' output_attentions). A padding query's row
is masked whole, as transformers masks it, so its weights are uniform there too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import Attention, _head_rows
from ..deferred_patterns import DEFERRED, PendingPattern
from ..hooks import HookPoint, is_hooked
from ..pattern_math import scale_heads, softmax_pattern

TERMS = ("content", "c2p", "p2c")


@dataclass(frozen=True)
class DisentangledSettings:
    c2p: bool                 # "c2p" in pos_att_type
    p2c: bool                 # "p2c" in pos_att_type
    relative: bool            # relative_attention: without it only the content term is computed
    share_att_key: bool       # relative embeddings projected by the layer's own query and key projections
    span: int                 # position_buckets, else max_relative_positions: the table has 2 * span rows

    @property
    def scale_factor(self) -> int:
        """transformers counts the relative terms pos_att_type names, even when relative_attention is off."""
        return 1 + int(self.c2p) + int(self.p2c)


@dataclass
class ScoreTerms:
    """One layer's score terms (B, H, T, S), as its hook points saw them; None for a term the config leaves out.
    content + c2p + p2c is the score before the mask (hook_attn_scores without it)."""
    content: torch.Tensor | None
    c2p: torch.Tensor | None
    p2c: torch.Tensor | None


@dataclass(frozen=True)
class RelativeContext:
    """What every layer reads, made once per forward by RelativePositions."""
    embeddings: torch.Tensor | None  # (2 span, d) relative embeddings, normed; None without relative_attention
    index: torch.Tensor | None       # (T, S) long: the table row of (query - key) for each query and key
    query_positions: torch.Tensor    # (T,) the queries' positions (all of them, or the ones read)

    def at(self, queries: torch.Tensor) -> "RelativeContext":
        index = self.index[queries] if self.index is not None else None
        return replace(self, index=index, query_positions=self.query_positions[queries])


def log_bucket(relative: torch.Tensor, buckets: int, max_position: int) -> torch.Tensor:
    """DeBERTa-v2's relative positions: exact within +-buckets/2, logarithmic beyond, up to +-max_position."""
    mid = buckets // 2
    sign = torch.sign(relative)
    near = (relative < mid) & (relative > -mid)
    distance = torch.where(near, torch.full_like(relative, mid - 1), relative.abs())  # (T, S)
    # float32 with transformers' operation order, so every bucket edge falls where it does there
    far = torch.ceil(torch.log(distance / mid) / torch.log(torch.tensor((max_position - 1) / mid)) * (mid - 1)) + mid
    return torch.where(distance <= mid, relative.to(far.dtype), far * sign).long()


class RelativePositions(nn.Module):
    """The relative embedding table shared by every layer (`encoder.rel_embeddings`, `encoder.LayerNorm`), and the
    query positions; without relative_attention only the positions (the mask's rows follow them)."""

    def __init__(self, d_model: int, span: int, buckets: int, max_relative: int, norm: bool, eps: float,
                 relative: bool) -> None:
        super().__init__()
        self.span, self.buckets, self.max_relative = span, buckets, max_relative
        self.embeddings = nn.Embedding(2 * span, d_model) if relative else None
        self.norm = nn.LayerNorm(d_model, eps=eps) if norm and relative else None

    def forward(self, length: int) -> RelativeContext:
        device = self.embeddings.weight.device if self.embeddings is not None else None
        positions = torch.arange(length, device=device)
        if self.embeddings is None:
            return RelativeContext(None, None, positions)
        table = self.embeddings.weight
        table = self.norm(table) if self.norm is not None else table  # (2 span, d)
        relative = positions[:, None] - positions[None, :]  # (T, T)
        if self.buckets > 0:
            relative = log_bucket(relative, self.buckets, self.max_relative)
        index = torch.clamp(relative + self.span, 0, 2 * self.span - 1)  # (T, T)
        return RelativeContext(table, index, positions)


class DisentangledAttention(Attention):
    """Attention with DeBERTa's relative terms; the `rotary` argument carries the RelativeContext."""

    def __init__(self, d_model: int, d_head: int, head_ids: list[int], settings: DisentangledSettings) -> None:
        n = len(head_ids)
        super().__init__(d_model, d_head, kv_index=list(range(n)), n_kv_heads=n, qkv_bias=True, output_bias=True,
                         head_ids=head_ids, scale=1.0 / math.sqrt(d_head * settings.scale_factor))
        self.settings = settings
        own = settings.relative and not settings.share_att_key
        self.pos_key_proj = nn.Linear(d_model, n * d_head) if own and settings.c2p else None
        self.pos_query_proj = nn.Linear(d_model, n * d_head) if own and settings.p2c else None
        self.hook_content_scores = HookPoint("(B, H, T, S) q.k / sqrt(dh * scale factor)")
        self.hook_c2p_scores = HookPoint("(B, H, T, S) content-to-position term: q_i . Kr[d(i, j)], scaled")
        self.hook_p2c_scores = HookPoint("(B, H, T, S) position-to-content term: k_j . Qr[d(i, j)], scaled")

    def attend_at(self, queries, x, mask, rotary, head_scale, capture):
        """Only positions `queries` are computed; the context and the mask rows follow them."""
        kv = self.project_kv(x)
        return self(x[:, queries], mask, rotary.at(queries) if rotary is not None else None, head_scale, capture,
                    kv=kv)

    def forward(self, x, mask, rotary, head_scale, capture, kv=None, cache=None):
        if cache is not None or (kv is not None and not isinstance(kv, tuple)):
            raise NotImplementedError("DeBERTa attention is self-attention of an encoder: no cache, no cross-attention.")
        context: RelativeContext | None = rotary
        B, T, _ = x.shape
        k, v = kv if kv is not None else self.project_kv(x)  # (B, S, H, dh)
        S = k.shape[1]
        if self.n_heads == 0:  # every head pruned: only the output bias is left
            return self.o_proj(x.new_zeros(B, T, 0)), (x.new_zeros(B, 0, T, S) if capture else None)
        q = self.hook_q(self.q_proj(x).view(B, T, self.n_heads, self.d_head))  # (B, T, H, dh)
        q_h, k_h, v_h = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, H, T|S, dh)
        full_mask = self._query_rows_masked(mask, context, T)  # (B, 1, T, S) or None
        relative = self._relative_terms(q_h, k_h, context)  # (B, H, T, S) or None
        bias = full_mask if relative is None else (relative if full_mask is None else relative + full_mask)
        # a hook on the content term, the summed scores or the pattern must see them during the forward
        hooked = any(is_hooked(h) for h in (self.hook_content_scores, self.hook_attn_scores, self.hook_pattern))
        defer = capture == DEFERRED and not hooked
        pattern = None
        if (capture and not defer) or hooked:
            content = self.hook_content_scores(torch.matmul(q_h, k_h.transpose(-1, -2)) * self.scale)  # (B, H, T, S)
            scores = self.hook_attn_scores(content if bias is None else content + bias)  # (B, H, T, S)
            probs = softmax_pattern(scores, q.dtype)
            if capture:
                probs = pattern = self.hook_pattern(probs)
            z = torch.matmul(probs, v_h)  # (B, H, T, dh)
        else:
            z = F.scaled_dot_product_attention(q_h, k_h, v_h, attn_mask=bias, scale=self.scale)  # (B, H, T, dh)
            if defer:  # the same arithmetic as above, on the same tensors, when first read
                pattern = PendingPattern(q_h, k_h, bias, self.scale, None)
        z = z.transpose(1, 2)  # (B, T, H, dh)
        if head_scale is not None:
            per_example = head_scale.to(z.dtype).reshape(-1, self.n_heads)  # (B or 1, H)
            z = z * per_example[:, None, :, None]
            if isinstance(pattern, PendingPattern):
                pattern.head_scale = per_example
            elif pattern is not None:
                pattern = scale_heads(pattern, per_example)
        z = self.hook_z(z)
        return self.o_proj(z.reshape(B, T, self.n_heads * self.d_head)), pattern

    def project_kv(self, source, rotary=None):
        B, S, _ = source.shape
        k = self.k_proj(source).view(B, S, self.n_heads, self.d_head)  # (B, S, H, dh)
        v = self.v_proj(source).view(B, S, self.n_heads, self.d_head)  # (B, S, H, dh)
        return self.hook_k(k), self.hook_v(v)

    @staticmethod
    def _query_rows_masked(mask: torch.Tensor | None, context: RelativeContext | None, T: int) -> torch.Tensor | None:
        """transformers masks a padding query's whole row too (its mask is keys x queries): (B, 1, T, S)."""
        if mask is None:
            return None
        if context is None:
            if T != mask.shape[-1]:
                raise ValueError("DeBERTa attention at some positions needs their positions (a RelativeContext).")
            rows = mask
        else:
            rows = mask[..., context.query_positions]  # (B, 1, 1, T)
        return torch.minimum(mask, rows.transpose(-1, -2))  # (B, 1, T, S)

    def _relative_terms(self, q_h, k_h, context: RelativeContext | None) -> torch.Tensor | None:
        """c2p + p2c (B, H, T, S), each through its hook point; None when there are none."""
        s = self.settings
        if not s.relative or not (s.c2p or s.p2c) or context is None or context.embeddings is None:
            return None
        B, H, T, _ = q_h.shape
        S = k_h.shape[2]
        table = context.embeddings  # (2 span, d)
        total = None
        if s.c2p:
            pos_k = self._heads_of(self.k_proj if s.share_att_key else self.pos_key_proj, table)  # (H, 2 span, dh)
            by_row = torch.matmul(q_h, pos_k.transpose(-1, -2))  # (B, H, T, 2 span)
            c2p = torch.gather(by_row, -1, context.index.expand(B, H, T, S)) * self.scale  # (B, H, T, S)
            total = self.hook_c2p_scores(c2p)
        if s.p2c:
            pos_q = self._heads_of(self.q_proj if s.share_att_key else self.pos_query_proj, table)  # (H, 2 span, dh)
            by_row = torch.matmul(k_h, pos_q.transpose(-1, -2))  # (B, H, S, 2 span)
            # key j, query i reads row d(i, j): gather along keys' rows, then put queries first
            p2c = torch.gather(by_row, -1, context.index.transpose(0, 1).expand(B, H, S, T)).transpose(-1, -2) * self.scale
            p2c = self.hook_p2c_scores(p2c)  # (B, H, T, S)
            total = p2c if total is None else total + p2c
        return total

    def _heads_of(self, projection: nn.Linear, table: torch.Tensor) -> torch.Tensor:
        """The relative table projected per head: (H, 2 span, dh)."""
        return projection(table).view(table.shape[0], self.n_heads, self.d_head).transpose(0, 1)

    @torch.no_grad()
    def without_heads(self, local_heads: list[int]) -> "DisentangledAttention":
        """A copy without these local heads: their rows of every projection (relative ones too) and their columns
        of the output projection go, so the pruned layer computes what the masked one does."""
        keep = [h for h in range(self.n_heads) if h not in set(local_heads)]
        new = DisentangledAttention(self.q_proj.in_features, self.d_head, [self.head_ids[h] for h in keep],
                                    self.settings).to(self.q_proj.weight.dtype)
        rows = _head_rows(keep, self.d_head)
        for name in ("q_proj", "k_proj", "v_proj", "pos_key_proj", "pos_query_proj"):
            old, cut = getattr(self, name), getattr(new, name)
            if old is not None:
                cut.weight.copy_(old.weight[rows])
                cut.bias.copy_(old.bias[rows])
        new.o_proj.weight.copy_(self.o_proj.weight[:, rows])
        new.o_proj.bias.copy_(self.o_proj.bias)
        return new
