"""The whole network: embeddings -> blocks -> final norm -> optional task head.

Families supply the embedding module, the blocks' layout and the converters; this module
runs them and returns every residual-stream state and attention pattern on request.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .attention import Attention
from .block import MLP, Block, make_norm
from .config import ModelConfig
from .hooks import HookPoint
from .rotary import rotary_cos_sin


@dataclass
class ForwardOutput:
    resid: list[torch.Tensor]                 # n_layers + 1 states (B, T, d): embeddings, then each block
    attentions: list[torch.Tensor]            # n_layers patterns (B, H_layer, T, T); empty without capture
    resid_final: torch.Tensor                 # (B, T, d) last block output, before the final norm
    final: torch.Tensor                       # (B, T, d) after the final norm (== resid_final without one)
    logits: torch.Tensor | None = None        # task-head output, if a head is attached
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # e.g. "pooled" for BERT


class TransformerModel(nn.Module):
    def __init__(self, cfg: ModelConfig, embed: nn.Module, norm_kind: str, norm_first: bool,
                 gated_mlp: bool, uses_rotary: bool, final_norm: bool) -> None:
        super().__init__()
        self.cfg = cfg
        self.uses_rotary = uses_rotary
        self.embed = embed
        self.hook_embed = HookPoint("(B, T, d) embedding output")
        self.blocks = nn.ModuleList(
            Block(
                attn=build_attention(cfg, layer),
                mlp=MLP(cfg.d_model, cfg.d_mlp, cfg.activation, gated_mlp, cfg.mlp_bias),
                norm_kind=norm_kind, d_model=cfg.d_model, eps=cfg.norm_eps, norm_first=norm_first,
            )
            for layer in range(cfg.n_layers)
        )
        self.final_norm = make_norm(norm_kind, cfg.d_model, cfg.norm_eps) if final_norm else None
        self.hook_resid_final = HookPoint("(B, T, d) before the final norm")
        self.pooler: nn.Module | None = None   # BERT's [CLS] pooler, when the checkpoint has one
        self.head: nn.Module | None = None     # task head, see models/heads.py

    def forward(
        self,
        input_ids: torch.Tensor | None = None,          # (B, T)
        attention_mask: torch.Tensor | None = None,     # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,     # (B, T) segment ids for sentence pairs
        inputs_embeds: torch.Tensor | None = None,      # (B, T, d) replaces the token embedding (attribution)
        head_scales: dict[int, torch.Tensor] | None = None,  # layer -> (H_layer,) per-head output scale
        capture: bool | str = True,
        pixel_values: torch.Tensor | None = None,       # (B, C, H, W) images (ViT-type embeddings)
        input_values: torch.Tensor | None = None,       # (B, samples) raw audio (Wav2Vec2-type embeddings)
        input_features: torch.Tensor | None = None,     # (B, mels, frames) log-mel audio (Whisper's encoder)
        cache: list[dict[str, torch.Tensor]] | None = None,  # per layer past keys/values, for generation
        read_positions: list[int] | None = None,        # the only final positions anything reads (see below)
    ) -> ForwardOutput:
        """With `read_positions`, the last block computes its output at those positions only (every key
        still attended), so `final`, `resid[-1]` and the head see (B, len(read_positions), d). Attribution
        reads one position ([CLS] through the pooler, or a masked token) on every step of its path."""
        signal = next((s for s in (pixel_values, input_values, input_features) if s is not None), None)
        past = cache[0]["k"].shape[1] if cache and "k" in cache[0] else 0  # positions already in the cache
        if signal is not None:
            # image and audio embeddings make their own sequence (patches, frames) and its mask
            x, attention_mask = self.embed.embed_signal(signal, attention_mask)  # (B, T, d), (B, T)
            B, T = attention_mask.shape
            positions = torch.arange(T, device=x.device).expand(B, T)
            x = self.hook_embed(x)
        else:
            reference = input_ids if input_ids is not None else inputs_embeds[..., 0]
            B, T = reference.shape
            device = reference.device
            if attention_mask is None:  # with a cache it covers the past keys too, as in transformers
                attention_mask = torch.ones(B, past + T, dtype=torch.long, device=device)
            # right padding: every row starts at 0; with a cache the new tokens follow the past
            positions = torch.arange(past, past + T, device=device).expand(B, T)
            x = self.hook_embed(self.embed(input_ids=input_ids, token_type_ids=token_type_ids,
                                           positions=positions, attention_mask=attention_mask,
                                           inputs_embeds=inputs_embeds))  # (B, T, d)
        mask = additive_mask(attention_mask, self.cfg.causal, x.dtype, past)  # (B, 1, T|1, S)
        rotary = rotary_cos_sin(positions, self.cfg.d_head, self.cfg.rope_theta, x.dtype) if self.uses_rotary else None
        resid, attentions = [x], []
        last = len(self.blocks) - 1
        queries = torch.tensor(read_positions, device=x.device) if read_positions is not None else None
        for layer, block in enumerate(self.blocks):
            scale = head_scales.get(layer) if head_scales else None
            x, pattern = block(x, mask, rotary, scale, capture, cache=cache[layer] if cache is not None else None,
                               queries=queries if layer == last else None)
            resid.append(x)
            if capture:
                attentions.append(pattern)
        resid_final = self.hook_resid_final(x)
        final = self.final_norm(resid_final) if self.final_norm is not None else resid_final
        out = ForwardOutput(resid=resid, attentions=attentions, resid_final=resid_final, final=final)
        if signal is not None:
            out.extras["attention_mask"] = attention_mask  # (B, T) of patches or frames, made by the embedding
        if self.pooler is not None:
            out.extras["pooled"] = self.pooler(final)
        if self.head is not None:
            out.logits = self.head(final, out.extras, attention_mask)
        return out


def build_attention(cfg: ModelConfig, layer: int) -> Attention:
    """The attention of `layer` with the heads `cfg.pruned_heads` leaves, keys shared as in GQA."""
    heads = cfg.heads_in_layer(layer)
    kv_of_head = [h // cfg.group_size for h in heads]
    kv_kept = sorted(set(kv_of_head))
    return Attention(
        d_model=cfg.d_model,
        d_head=cfg.d_head,
        kv_index=[kv_kept.index(kv) for kv in kv_of_head],
        n_kv_heads=len(kv_kept),
        qkv_bias=cfg.attention_bias,
        output_bias=cfg.output_bias,
        head_ids=heads,
    )


def additive_mask(attention_mask: torch.Tensor, causal: bool, dtype: torch.dtype, past: int = 0) -> torch.Tensor:
    """0 where a query may attend, the dtype's minimum where it may not: (B, 1, 1, S) or (B, 1, T, S).

    `attention_mask` covers all S keys; the T = S - past queries are the last positions (decoding cache)."""
    B, S = attention_mask.shape
    allowed = attention_mask[:, None, None, :].bool()  # (B, 1, 1, S)
    if causal:
        query = torch.arange(past, S, device=attention_mask.device)[:, None]  # (T, 1)
        key = torch.arange(S, device=attention_mask.device)[None, :]  # (1, S)
        allowed = allowed & (key <= query)[None, None]  # (B, 1, T, S)
    minimum = torch.finfo(dtype).min
    return torch.zeros(allowed.shape, dtype=dtype, device=attention_mask.device).masked_fill(~allowed, minimum)
