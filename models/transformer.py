"""The whole network: embeddings -> blocks -> final norm -> optional task head.

Families supply the embedding module, the blocks' layout and the converters; this module
runs them and returns every residual-stream state and attention pattern on request. One
`TransformerModel` is a whole encoder-only or decoder-only model, or one side of an
encoder-decoder (models/encoder_decoder.py), whose decoder blocks then carry cross-attention.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from .attention import Attention
from .block import MLP, Block, make_norm
from .config import HeadKey, ModelConfig
from .experts import RouterChoice, router_by_layer, routing_recorded
from .hooks import HookPoint
from .rotary import rotary_tables


@dataclass
class ForwardOutput:
    resid: list[torch.Tensor]                 # n_layers + 1 states (B, T, d): embeddings, then each block
    attentions: list[torch.Tensor]            # n_layers patterns (B, H_layer, T, T); empty without capture
    resid_final: torch.Tensor                 # (B, T, d) last block output, before the final norm
    final: torch.Tensor                       # (B, T, d) after the final norm (== resid_final without one)
    logits: torch.Tensor | None = None        # task-head output, if a head is attached
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # "pooled" for BERT, "attention_mask" for signals
    cross_attentions: list[torch.Tensor] = field(default_factory=list)  # (B, H, T, S) over encoder positions
    # per layer the experts' choice (models/experts.py), None for a dense MLP; empty without capture or experts
    router: list[RouterChoice | None] = field(default_factory=list)


class TransformerModel(nn.Module):
    # where the task head and the token embedding sit in the state dict (an encoder-decoder's are under "decoder.")
    head_path = "head"
    word_embedding_key = "embed.word.weight"
    is_encoder_decoder = False

    def __init__(self, cfg: ModelConfig, embed: nn.Module, norm_kind: str, norm_first: bool,
                 gated_mlp: bool, uses_rotary: bool, final_norm: bool, stack: str | None = None,
                 cross_stack: str | None = None, norms: str | None = None, parallel: str | None = None,
                 make_mlp: Callable[[ModelConfig, int], nn.Module] | None = None,
                 position_bias: nn.Module | None = None,
                 make_attention: Callable[[ModelConfig, HeadKey], nn.Module] | None = None,
                 relative_positions: nn.Module | None = None) -> None:
        """`norms` and `parallel` choose the block layout (models/block.py); `make_mlp(cfg, layer)` replaces the
        dense MLP (mixture-of-experts families). `position_bias` (T5, MPNet) is a module called once per forward as
        `position_bias(query_length, key_length, past)` that returns an additive score bias (1 or B, H, T, S) over
        the stack's original heads; every layer's self-attention adds the rows of the heads it still has.
        `make_attention(cfg, (stack, layer))` replaces the self-attention (DeBERTa's disentangled attention; it keeps
        Attention's interface). `relative_positions` (DeBERTa) is a module called once per forward as
        `relative_positions(T)`; what it returns reaches every self-attention in the rotary tables' place."""
        super().__init__()
        self.cfg = cfg
        self.stack = stack or cfg.main_stack          # the name its self-attention heads are keyed by
        self.cross_stack = cross_stack                # set: every block attends to an encoder output too
        self.uses_rotary = uses_rotary
        self.embed = embed
        self.hook_embed = HookPoint("(B, T, d) embedding output")
        self.position_bias = position_bias
        self.relative_positions = relative_positions
        self.hook_position_bias = HookPoint("(1 or B, H, T, S) relative position bias added to every layer's scores")
        qk_norm = (lambda: make_norm(norm_kind, cfg.d_head, cfg.norm_eps)) if cfg.qk_norm else None
        self.blocks = nn.ModuleList(
            Block(
                attn=(make_attention or (lambda c, key: build_attention(c, key, qk_norm)))(cfg, (self.stack, layer)),
                mlp=make_mlp(cfg, layer) if make_mlp else MLP(cfg.d_model, cfg.d_mlp, cfg.activation, gated_mlp,
                                                              cfg.mlp_bias),
                norm_kind=norm_kind, d_model=cfg.d_model, eps=cfg.norm_eps, norm_first=norm_first,
                cross_attn=build_attention(cfg, (cross_stack, layer)) if cross_stack else None,
                norms=norms, parallel=parallel, residual_scale=cfg.residual_scale,
            )
            for layer in range(cfg.n_layers)
        )
        self.final_norm = make_norm(norm_kind, cfg.d_model, cfg.norm_eps) if final_norm else None
        self.hook_resid_final = HookPoint("(B, T, d) before the final norm")
        self.pooler: nn.Module | None = None   # BERT's [CLS] pooler, when the checkpoint has one
        self.head: nn.Module | None = None     # task head, see models/heads.py

    def attach_head(self, head: nn.Module | None) -> None:
        self.head = head

    def set_config(self, cfg: ModelConfig) -> None:
        self.cfg = cfg

    def attention_owner(self, key: HeadKey) -> tuple[nn.Module, str] | None:
        """(block, attribute) of the attention of `key` = (stack, layer) in this network, or None."""
        stack, layer = key
        if stack == self.stack:
            return self.blocks[layer], "attn"
        if stack == self.cross_stack:
            return self.blocks[layer], "cross_attn"
        return None

    def forward(
        self,
        input_ids: torch.Tensor | None = None,          # (B, T)
        attention_mask: torch.Tensor | None = None,     # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,     # (B, T) segment ids for sentence pairs
        inputs_embeds: torch.Tensor | None = None,      # (B, T, d) replaces the token embedding (attribution)
        head_scales: dict[HeadKey, torch.Tensor] | None = None,  # (stack, layer) -> (H_layer,) per-head output scale
        capture: bool | str = True,
        pixel_values: torch.Tensor | None = None,       # (B, C, H, W) images (ViT-type embeddings)
        input_values: torch.Tensor | None = None,       # (B, samples) raw audio (Wav2Vec2-type embeddings)
        input_features: torch.Tensor | None = None,     # (B, mels, frames) log-mel audio (Whisper's encoder)
        cache: list[dict[str, torch.Tensor]] | None = None,  # per layer past keys/values, for generation
        read_positions: list[int] | None = None,        # the only final positions anything reads (see below)
        encoder_states: torch.Tensor | None = None,     # (B, S, d) what cross-attention reads
        encoder_mask: torch.Tensor | None = None,       # (B, S) 1 for real encoder positions
        start_layer: int = 0,                           # run from this block on, from `resid_in`
        resid_in: torch.Tensor | None = None,           # (B, T, d) the residual stream entering `start_layer`
        stop_layer: int | None = None,                  # stop before this block: no final norm, no head
    ) -> ForwardOutput:
        """With `read_positions`, the last block computes its output at those positions only (every key
        still attended), so `final`, `resid[-1]` and the head see (B, len(read_positions), d). Attribution
        reads one position ([CLS] through the pooler, or a masked token) on every step of its path.
        `start_layer` and `stop_layer` cut the stack, so frozen layers are run once when training a head."""
        signal = next((s for s in (pixel_values, input_values, input_features) if s is not None), None)
        past = cache[0]["k"].shape[1] if cache and "k" in cache[0] else 0  # positions already in the cache
        if signal is not None:
            # image and audio embeddings make their own sequence (patches, frames) and its mask
            x, attention_mask = self.embed.embed_signal(signal, attention_mask)  # (B, T, d), (B, T)
            B, T = attention_mask.shape
            positions = torch.arange(T, device=x.device).expand(B, T)
            x = self.hook_embed(x)
        else:
            reference = next(t for t in (input_ids, inputs_embeds, resid_in) if t is not None)
            B, T = reference.shape[:2]
            device = reference.device
            if attention_mask is None:  # with a cache it covers the past keys too, as in transformers
                attention_mask = torch.ones(B, past + T, dtype=torch.long, device=device)
            # right padding: every row starts at 0; with a cache the new tokens follow the past
            positions = torch.arange(past, past + T, device=device).expand(B, T)
            if resid_in is not None:
                x = resid_in
            else:
                x = self.embed(input_ids=input_ids, token_type_ids=token_type_ids, positions=positions,
                               attention_mask=attention_mask, inputs_embeds=inputs_embeds)  # (B, T, d)
                if self.cfg.embed_scale is not None:  # Gemma: sqrt(d_model); Granite: embedding_multiplier
                    # in the hidden dtype first, as transformers rounds it (55.5, not 55.43, for Gemma-2B in bf16)
                    x = x * torch.tensor(self.cfg.embed_scale, dtype=x.dtype)
                x = self.hook_embed(x)
        masks = attention_masks(self.cfg, attention_mask, x.dtype, past)  # per layer type: (B, 1, T|1, S)
        bias = None
        if self.position_bias is not None:
            bias = self.hook_position_bias(self.position_bias(x.shape[1], past + x.shape[1], past).to(x.dtype))
        rotary = rotary_tables(self.cfg, positions, x.dtype) if self.uses_rotary else None
        if self.relative_positions is not None:  # computed once, read by every layer
            context = self.relative_positions(x.shape[1])
            rotary = {kind: context for kind in masks}
        cross_mask = None
        if encoder_mask is not None and not bool(encoder_mask.all()):
            cross_mask = additive_mask(encoder_mask, False, x.dtype)  # (B, 1, 1, S)
        resid, attentions, crosses = [x], [], []
        stop = len(self.blocks) if stop_layer is None else stop_layer
        queries = torch.tensor(read_positions, device=x.device) if read_positions is not None else None
        with routing_recorded(bool(capture)) as routing:  # expert layers file their choices here
            for layer in range(start_layer, stop):
                block = self.blocks[layer]
                layer_cache = cache[layer] if cache is not None else None
                kind = self.cfg.layer_type(layer)
                mask = masks[kind] if bias is None else masks[kind] + _head_rows(bias, block.attn.head_ids)
                x, pattern, cross_pattern = block(
                    x, mask, rotary[kind] if rotary else None, _scale(head_scales, self.stack, layer), capture,
                    cache=layer_cache,
                    queries=queries if layer == stop - 1 and stop_layer is None else None,
                    cross=self._cross_input(layer, encoder_states, cross_mask, head_scales, layer_cache))
                resid.append(x)
                if capture:
                    attentions.append(pattern)
                    if self.cross_stack:
                        crosses.append(cross_pattern)
        router = router_by_layer(routing, len(self.blocks))
        if stop_layer is not None:
            return ForwardOutput(resid=resid, attentions=attentions, resid_final=x, final=x, cross_attentions=crosses,
                                 router=router)
        resid_final = self.hook_resid_final(x)
        final = self.final_norm(resid_final) if self.final_norm is not None else resid_final
        out = ForwardOutput(resid=resid, attentions=attentions, resid_final=resid_final, final=final,
                            cross_attentions=crosses, router=router)
        if bias is not None and capture:
            out.extras["position_bias"] = bias  # (1 or B, H, T, S), original head numbering
        if signal is not None:
            out.extras["attention_mask"] = attention_mask  # (B, T) of patches or frames, made by the embedding
        if self.pooler is not None:
            out.extras["pooled"] = self.pooler(final)
        if self.head is not None:
            out.logits = self.head(final, out.extras, attention_mask)
        return out

    def _cross_input(self, layer: int, encoder_states, cross_mask, head_scales, layer_cache):
        """(keys and values, mask, head scale) for a decoder block's cross-attention, or None. While decoding,
        the encoder output's keys and values are projected once and kept in the layer's cache."""
        if not self.cross_stack:
            return None
        attn = self.blocks[layer].cross_attn
        if layer_cache is not None:
            if "cross_k" not in layer_cache:
                layer_cache["cross_k"], layer_cache["cross_v"] = attn.project_kv(encoder_states)
            kv = (layer_cache["cross_k"], layer_cache["cross_v"])
        else:
            kv = encoder_states
        return kv, cross_mask, _scale(head_scales, self.cross_stack, layer)


def _head_rows(bias: torch.Tensor, head_ids: list[int]) -> torch.Tensor:
    """The bias rows (1 or B, H_layer, T, S) of a layer's remaining heads, named by their original numbers."""
    if len(head_ids) == bias.shape[1] and head_ids == list(range(bias.shape[1])):
        return bias
    return bias[:, torch.tensor(head_ids, dtype=torch.long, device=bias.device)]


def _scale(head_scales: dict | None, stack: str, layer: int) -> torch.Tensor | None:
    return head_scales.get((stack, layer)) if head_scales else None


def build_attention(cfg: ModelConfig, key: HeadKey, qk_norm: Callable[[], nn.Module] | None = None) -> Attention:
    """The attention of `key` = (stack, layer) with the heads `cfg.pruned_heads` leaves, keys shared as in GQA,
    and the family's variants (score scale and soft-cap, query/key norms, rotary layout) switched on."""
    stack, layer = key
    heads = cfg.heads_in_layer(layer, stack)
    group = cfg.group_size if stack == cfg.main_stack else 1
    kv_of_head = [h // group for h in heads]
    kv_kept = sorted(set(kv_of_head))
    return Attention(
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        kv_index=[kv_kept.index(kv) for kv in kv_of_head],
        n_kv_heads=len(kv_kept),
        qkv_bias=cfg.attention_bias,
        output_bias=cfg.output_bias,
        head_ids=heads,
        # a per-layer scale (GPT-2's scale_attn_by_inverse_layer_idx) applies to the main stack's self-attention
        scale=cfg.attention_scales[layer] if cfg.attention_scales and stack == cfg.main_stack else cfg.attention_scale,
        softcap=cfg.attn_softcap,
        qk_norm=qk_norm,
        interleaved_rotary=cfg.rotary_interleaved,
    )


def attention_masks(cfg: ModelConfig, attention_mask: torch.Tensor, dtype: torch.dtype,
                    past: int = 0) -> dict[str, torch.Tensor]:
    """The additive mask of each layer type the model has: "full_attention", and "sliding_attention" where
    keys more than `sliding_window` positions before the query are hidden too (Mistral, Gemma 2 and 3),
    or, in a bidirectional encoder, farther than `sliding_window // 2` either side (ModernBERT)."""
    masks = {"full_attention": additive_mask(attention_mask, cfg.causal, dtype, past)}
    if cfg.layer_types and "sliding_attention" in cfg.layer_types:
        masks["sliding_attention"] = additive_mask(attention_mask, cfg.causal, dtype, past, window=cfg.sliding_window)
    return masks


def additive_mask(attention_mask: torch.Tensor, causal: bool, dtype: torch.dtype, past: int = 0,
                  window: int | None = None) -> torch.Tensor:
    """0 where a query may attend, the dtype's minimum where it may not: (B, 1, 1, S) or (B, 1, T, S).

    `attention_mask` covers all S keys; the T = S - past queries are the last positions (decoding cache).
    With `window`, a causal query sees only the keys less than `window` positions back, as transformers'
    sliding-window attention does; a bidirectional one (ModernBERT's local layers) sees the keys at most
    `window // 2` positions away on either side."""
    B, S = attention_mask.shape
    allowed = attention_mask[:, None, None, :].bool()  # (B, 1, 1, S)
    if window is not None and not causal:
        query = torch.arange(past, S, device=attention_mask.device)[:, None]  # (T, 1)
        key = torch.arange(S, device=attention_mask.device)[None, :]  # (1, S)
        allowed = allowed & ((key - query).abs() <= window // 2)[None, None]  # (B, 1, T, S)
    elif causal:
        query = torch.arange(past, S, device=attention_mask.device)[:, None]  # (T, 1)
        key = torch.arange(S, device=attention_mask.device)[None, :]  # (1, S)
        visible = key <= query
        if window is not None:
            visible = visible & (key > query - window)
        allowed = allowed & visible[None, None]  # (B, 1, T, S)
    minimum = torch.finfo(dtype).min
    return torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device).masked_fill(~allowed, minimum)
