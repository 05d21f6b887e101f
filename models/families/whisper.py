"""Whisper (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision").

An encoder-decoder. The encoder reads a 30 s log-mel spectrogram: two 1-D convolutions (the
second with stride 2, so one position per 20 ms), fixed sinusoidal positions, pre-norm blocks and
a final LayerNorm. The decoder is a pre-norm causal transformer whose every block also attends to
the encoder output (cross-attention), with learned positions and the token embedding tied to the
output projection. Attention modules are the shared `Attention`, so masking, pruning and hook
points work as in every other family.

Head keys: the trace's `attentions` and `tokens` are the decoder's, so an integer layer means a
decoder self-attention layer (as on text models); the encoder's and the cross-attention's heads
are named "encoder.{i}" and "cross.{i}".
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import Attention
from ..block import MLP
from ..config import ModelConfig
from ..errors import InputError
from ..hooks import HookPoint
from ..transformer import ForwardOutput, TransformerModel, additive_mask
from .base import Family, StateDict, register, rename

FRAMES_PER_POSITION = 2            # conv2 has stride 2: one encoder position per two 10 ms mel frames
SECONDS_PER_POSITION = 0.02


def sinusoids(length: int, channels: int) -> torch.Tensor:
    """Whisper's fixed encoder positions (length, channels): sines then cosines."""
    increment = math.log(10000) / (channels // 2 - 1)
    inv = torch.exp(-increment * torch.arange(channels // 2))  # (channels / 2,)
    scaled = torch.arange(length)[:, None] * inv[None, :]  # (length, channels / 2)
    return torch.cat([scaled.sin(), scaled.cos()], dim=1)


class AudioConvEmbeddings(nn.Module):
    """log-mel (B, n_mels, 3000) -> (B, 1500, d): conv, GELU, strided conv, GELU, plus positions."""

    def __init__(self, n_mels: int, d_model: int, n_positions: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(n_mels, d_model, kernel_size=3, padding=1)
        self.conv2 = nn.Conv1d(d_model, d_model, kernel_size=3, stride=2, padding=1)
        self.position = nn.Parameter(sinusoids(n_positions, d_model), requires_grad=False)

    def embed_signal(self, input_features: torch.Tensor, attention_mask: torch.Tensor | None):
        expected = self.position.shape[0] * FRAMES_PER_POSITION
        if input_features.shape[-1] != expected or input_features.shape[1] != self.conv1.in_channels:
            raise InputError(f"Whisper's encoder reads ({self.conv1.in_channels}, {expected}) log-mel features "
                             f"(30 s); got {tuple(input_features.shape[1:])}. Use the model's feature extractor.")
        x = F.gelu(self.conv1(input_features.to(self.conv1.weight.dtype)))  # (B, d, 3000)
        x = F.gelu(self.conv2(x)).transpose(1, 2)  # (B, 1500, d)
        x = x + self.position[: x.shape[1]]
        return x, torch.ones(x.shape[:2], dtype=torch.long, device=x.device)


class DecoderBlock(nn.Module):
    """Pre-norm: causal self-attention, then cross-attention to the encoder, then the MLP."""

    def __init__(self, attn: Attention, cross_attn: Attention, mlp: MLP, d_model: int, eps: float) -> None:
        super().__init__()
        self.attn, self.cross_attn, self.mlp = attn, cross_attn, mlp
        self.ln1 = nn.LayerNorm(d_model, eps=eps)
        self.ln_cross = nn.LayerNorm(d_model, eps=eps)
        self.ln2 = nn.LayerNorm(d_model, eps=eps)
        self.hook_resid_pre = HookPoint("(B, T, d) block input")
        self.hook_attn_out = HookPoint("(B, T, d) self-attention output after projection")
        self.hook_resid_mid = HookPoint("(B, T, d) after self-attention and its residual")
        self.hook_cross_out = HookPoint("(B, T, d) cross-attention output after projection")
        self.hook_resid_cross = HookPoint("(B, T, d) after cross-attention and its residual")
        self.hook_mlp_out = HookPoint("(B, T, d) MLP output")
        self.hook_resid_post = HookPoint("(B, T, d) block output")

    def forward(self, x, mask, cross_kv, self_scale, cross_scale, capture, past=None):
        """`past`: (k, v) of earlier positions when decoding step by step; returns the extended pair."""
        x = self.hook_resid_pre(x)
        h = self.ln1(x)
        if past is not None:
            k_new, v_new = self.attn.project_kv(h)  # (B, T, KV, dh)
            past = (torch.cat([past[0], k_new], dim=1), torch.cat([past[1], v_new], dim=1))
            attn_out, pattern = self.attn(h, mask, None, self_scale, capture, kv=past)
        else:
            attn_out, pattern = self.attn(h, mask, None, self_scale, capture)
        mid = self.hook_resid_mid(x + self.hook_attn_out(attn_out))
        cross_out, cross_pattern = self.cross_attn(self.ln_cross(mid), None, None, cross_scale, capture, kv=cross_kv)
        mid2 = self.hook_resid_cross(mid + self.hook_cross_out(cross_out))
        out = mid2 + self.hook_mlp_out(self.mlp(self.ln2(mid2)))
        return self.hook_resid_post(out), pattern, cross_pattern, past


@dataclass
class DecoderOutput:
    resid: list[torch.Tensor]             # n_layers + 1 states (B, T, d)
    attentions: list[torch.Tensor]        # n_layers (B, H, T, T) self-attention; empty without capture
    cross_attentions: list[torch.Tensor]  # n_layers (B, H, T, S) over encoder positions
    resid_final: torch.Tensor             # (B, T, d) before the final norm
    final: torch.Tensor                   # (B, T, d)
    logits: torch.Tensor                  # (B, T, vocab)
    cache: list[tuple[torch.Tensor, torch.Tensor]] | None = None


class WhisperDecoder(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Embedding(cfg.max_positions, cfg.d_model)
        self.hook_embed = HookPoint("(B, T, d) token + position embedding")
        self.blocks = nn.ModuleList(
            DecoderBlock(_attention(cfg, layer), _attention(cfg, f"cross.{layer}"),
                         MLP(cfg.d_model, cfg.d_mlp, cfg.activation, gated=False, bias=True), cfg.d_model, cfg.norm_eps)
            for layer in range(cfg.n_layers))
        self.final_norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.hook_resid_final = HookPoint("(B, T, d) before the final norm")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, cross_kv: list,
                self_scales: dict | None = None, cross_scales: dict | None = None, capture: bool | str = True,
                cache: list | None = None, offset: int = 0) -> DecoderOutput:
        """`cross_kv`: per layer the encoder output (B, S, d) or its projected (k, v); `cache` for step-wise decoding."""
        B, T = input_ids.shape
        if offset + T > self.cfg.max_positions:
            raise InputError(f"Whisper's decoder reads at most {self.cfg.max_positions} tokens; got {offset + T}.")
        positions = torch.arange(offset, offset + T, device=input_ids.device)
        x = self.hook_embed(self.word(input_ids) + self.position(positions)[None])  # (B, T, d)
        if cache is not None and T == 1:
            mask = None  # one new position sees every earlier one
        else:
            if attention_mask is None:
                attention_mask = torch.ones(B, T, dtype=torch.long, device=input_ids.device)
            mask = additive_mask(attention_mask, causal=True, dtype=x.dtype)  # (B, 1, T, T)
        resid, attentions, crosses, new_cache = [x], [], [], []
        for layer, block in enumerate(self.blocks):
            past = None
            if cache is not None:
                past = cache[layer] if cache[layer] is not None else _empty_kv(block.attn, B, x)
            x, pattern, cross_pattern, past = block(
                x, mask, cross_kv[layer], (self_scales or {}).get(layer), (cross_scales or {}).get(layer), capture, past)
            resid.append(x)
            new_cache.append(past)
            if capture:
                attentions.append(pattern)
                crosses.append(cross_pattern)
        resid_final = self.hook_resid_final(x)
        final = self.final_norm(resid_final)
        logits = final @ self.word.weight.T  # (B, T, vocab): the output projection is the tied embedding
        return DecoderOutput(resid, attentions, crosses, resid_final, final, logits,
                             new_cache if cache is not None else None)


def _empty_kv(attn: Attention, B: int, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    empty = like.new_zeros(B, 0, attn.n_kv_heads, attn.d_head)  # (B, 0, KV, dh)
    return empty, empty


def _attention(cfg: ModelConfig, key) -> Attention:
    heads = cfg.heads_in_layer(key)
    return Attention(d_model=cfg.d_model, d_head=cfg.d_head, kv_index=list(range(len(heads))), n_kv_heads=len(heads),
                     qkv_bias=True, output_bias=True, head_ids=heads)


@dataclass
class Seq2SeqOutput:
    encoder: ForwardOutput
    decoder: DecoderOutput
    extras: dict[str, Any] = field(default_factory=dict)


class WhisperNetwork(nn.Module):
    """encoder (a TransformerModel over audio positions) + decoder with cross-attention."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = TransformerModel(encoder_config(cfg), AudioConvEmbeddings(
            cfg.hf_config.get("num_mel_bins", 80), cfg.d_model, cfg.hf_config.get("max_source_positions", 1500)),
            norm_kind="layer", norm_first=True, gated_mlp=False, uses_rotary=False, final_norm=True)
        self.decoder = WhisperDecoder(cfg)
        self.head = None

    @property
    def embed(self) -> WhisperDecoder:
        """The token embedding lives in the decoder (`embed.word`, as on text models)."""
        return self.decoder

    @property
    def blocks(self) -> nn.ModuleList:
        """The decoder's blocks: the ones the trace's `attentions` come from."""
        return self.decoder.blocks

    def encode(self, input_features: torch.Tensor, scales: dict | None = None, capture: bool | str = True) -> ForwardOutput:
        return self.encoder(input_features=input_features, head_scales=(scales or {}).get("encoder"), capture=capture)

    def forward(self, input_features: torch.Tensor | None = None, decoder_input_ids: torch.Tensor | None = None,
                decoder_attention_mask: torch.Tensor | None = None, head_scales: dict | None = None,
                capture: bool | str = True, encoder_out: ForwardOutput | None = None) -> Seq2SeqOutput:
        scales = split_scales(head_scales)
        if encoder_out is None:
            encoder_out = self.encode(input_features, scales, capture)
        decoder_out = self.decoder(decoder_input_ids, decoder_attention_mask, [encoder_out.final] * len(self.decoder.blocks),
                                   scales.get("decoder"), scales.get("cross"), capture)
        return Seq2SeqOutput(encoder_out, decoder_out)


def split_scales(head_scales: dict | None) -> dict[str, dict[int, torch.Tensor]]:
    """{0: s, "encoder.1": s, "cross.2": s} -> {"decoder": {0: s}, "encoder": {1: s}, "cross": {2: s}}."""
    out: dict[str, dict[int, torch.Tensor]] = {"decoder": {}, "encoder": {}, "cross": {}}
    for key, scale in (head_scales or {}).items():
        stack, layer = parse_key(key)
        out[stack][layer] = scale
    return out


def parse_key(key) -> tuple[str, int]:
    if isinstance(key, str) and "." in key:
        stack, layer = key.split(".", 1)
        if stack in ("encoder", "decoder", "cross") and layer.isdigit():
            return stack, int(layer)
    elif isinstance(key, int) and not isinstance(key, bool):
        return "decoder", key
    raise InputError(f"Whisper head key {key!r}: use a decoder layer number, or 'encoder.N' / 'cross.N'.")


def stack_key(stack: str, layer: int):
    """The key under which `stack`'s layer is kept in `pruned_heads` and head scales."""
    return layer if stack == "decoder" else f"{stack}.{layer}"


def encoder_config(cfg: ModelConfig) -> ModelConfig:
    hf = cfg.hf_config
    n_heads = hf["encoder_attention_heads"]
    return ModelConfig(
        family="whisper", n_layers=hf["encoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=cfg.d_model,
        d_head=cfg.d_model // n_heads, d_mlp=hf["encoder_ffn_dim"], vocab_size=0,
        max_positions=hf.get("max_source_positions", 1500), norm_eps=cfg.norm_eps, activation=cfg.activation,
        pruned_heads={int(k.split(".")[1]): v for k, v in cfg.pruned_heads.items() if str(k).startswith("encoder.")},
        hf_config=hf)


def _config(hf: dict[str, Any]) -> ModelConfig:
    n_heads = hf["decoder_attention_heads"]
    pruned = {}
    for key, heads in hf.get("workbench_pruned_heads", {}).items():
        pruned[int(key) if key.isdigit() else key] = list(heads)
    return ModelConfig(
        family="whisper", n_layers=hf["decoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=hf["d_model"],
        d_head=hf["d_model"] // n_heads, d_mlp=hf["decoder_ffn_dim"], vocab_size=hf["vocab_size"],
        max_positions=hf.get("max_target_positions", 448), norm_eps=1e-5,
        activation=hf.get("activation_function", "gelu"), causal=True, pad_token_id=hf.get("pad_token_id"),
        bos_token_id=hf.get("decoder_start_token_id"), eos_token_id=hf.get("eos_token_id"), tie_word_embeddings=True,
        pruned_heads=pruned, hf_config=dict(hf))


def _config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    hf = {k: v for k, v in cfg.hf_config.items() if k != "workbench_pruned_heads"}
    if cfg.pruned_heads:
        # transformers' Whisper cannot prune, and its `pruned_heads` takes integer keys only: kept under our own key
        hf["workbench_pruned_heads"] = {str(k): v for k, v in cfg.pruned_heads.items()}
    return hf


def _attn_pairs(hf: str, ours: str) -> list[tuple[str, str]]:
    pairs = [(f"{hf}q_proj.weight", f"{ours}q_proj.weight"), (f"{hf}q_proj.bias", f"{ours}q_proj.bias"),
             (f"{hf}k_proj.weight", f"{ours}k_proj.weight"),
             (f"{hf}v_proj.weight", f"{ours}v_proj.weight"), (f"{hf}v_proj.bias", f"{ours}v_proj.bias"),
             (f"{hf}out_proj.weight", f"{ours}o_proj.weight"), (f"{hf}out_proj.bias", f"{ours}o_proj.bias")]
    return pairs


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF name under `model.`, our name) for every Whisper weight; key biases are handled apart."""
    hf = cfg.hf_config
    pairs = [("encoder.conv1.weight", "encoder.embed.conv1.weight"), ("encoder.conv1.bias", "encoder.embed.conv1.bias"),
             ("encoder.conv2.weight", "encoder.embed.conv2.weight"), ("encoder.conv2.bias", "encoder.embed.conv2.bias"),
             ("encoder.layer_norm.weight", "encoder.final_norm.weight"), ("encoder.layer_norm.bias", "encoder.final_norm.bias"),
             ("decoder.embed_tokens.weight", "decoder.word.weight"),
             ("decoder.embed_positions.weight", "decoder.position.weight"),
             ("decoder.layer_norm.weight", "decoder.final_norm.weight"), ("decoder.layer_norm.bias", "decoder.final_norm.bias")]
    for i in range(hf["encoder_layers"]):
        h, o = f"encoder.layers.{i}.", f"encoder.blocks.{i}."
        pairs += _attn_pairs(f"{h}self_attn.", f"{o}attn.")
        for p in ("weight", "bias"):
            pairs += [(f"{h}self_attn_layer_norm.{p}", f"{o}ln1.{p}"), (f"{h}final_layer_norm.{p}", f"{o}ln2.{p}"),
                      (f"{h}fc1.{p}", f"{o}mlp.fc_in.{p}"), (f"{h}fc2.{p}", f"{o}mlp.fc_out.{p}")]
    for i in range(hf["decoder_layers"]):
        h, o = f"decoder.layers.{i}.", f"decoder.blocks.{i}."
        pairs += _attn_pairs(f"{h}self_attn.", f"{o}attn.")
        pairs += _attn_pairs(f"{h}encoder_attn.", f"{o}cross_attn.")
        for p in ("weight", "bias"):
            pairs += [(f"{h}self_attn_layer_norm.{p}", f"{o}ln1.{p}"), (f"{h}encoder_attn_layer_norm.{p}", f"{o}ln_cross.{p}"),
                      (f"{h}final_layer_norm.{p}", f"{o}ln2.{p}"),
                      (f"{h}fc1.{p}", f"{o}mlp.fc_in.{p}"), (f"{h}fc2.{p}", f"{o}mlp.fc_out.{p}")]
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    ours = rename(sd, _pairs(cfg))
    hf = cfg.hf_config
    # Whisper's key projections have no bias; a zero bias is exact (it shifts every score of a query equally)
    for name, weight in list(ours.items()):
        if name.endswith("k_proj.weight"):
            ours[name[: -len("weight")] + "bias"] = weight.new_zeros(weight.shape[0])
    if "encoder.embed_positions.weight" in sd:
        ours["encoder.embed.position"] = sd["encoder.embed_positions.weight"]
    else:
        ours["encoder.embed.position"] = sinusoids(hf.get("max_source_positions", 1500), cfg.d_model)
    return ours


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(o, h) for h, o in _pairs(cfg)])
    out["encoder.embed_positions.weight"] = sd["encoder.embed.position"]
    return out


WHISPER = register(Family(
    name="whisper", model_types=("whisper",), config_from_hf=_config, config_to_hf=_config_to_hf,
    build=lambda cfg: WhisperNetwork(cfg), state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf,
    hf_prefix=lambda cfg: "model.", modality="audio",
))


def without_heads(network: WhisperNetwork, cfg: ModelConfig, heads: dict) -> tuple[WhisperNetwork, ModelConfig]:
    """A pruned copy: `heads` maps keys (decoder int, "encoder.N", "cross.N") to original head numbers."""
    network, cfg = copy.deepcopy(network), copy.deepcopy(cfg)
    for key, chosen in heads.items():
        if not chosen:
            continue
        stack, layer = parse_key(key)
        if stack == "encoder":
            owner, attr = network.encoder.blocks[layer], "attn"
        else:
            owner, attr = network.decoder.blocks[layer], "attn" if stack == "decoder" else "cross_attn"
        attn = getattr(owner, attr)
        setattr(owner, attr, attn.without_heads([attn.head_ids.index(h) for h in set(chosen)]))
        cfg.pruned_heads[key] = sorted(set(cfg.pruned_heads.get(key, [])) | set(chosen))
    network.cfg = cfg
    network.encoder.cfg = encoder_config(cfg)
    network.decoder.cfg = cfg
    return network, cfg
