"""BART (Lewis et al. 2020, "BART: Denoising Sequence-to-Sequence Pre-training") and mBART (Liu et al. 2020,
"Multilingual Denoising Pre-training for Neural Machine Translation").

A text encoder-decoder: one token embedding shared by both stacks (and tied to the output projection), scaled by
sqrt(d_model) when `scale_embedding`, plus learned positions read at position + 2 (fairseq's padding offset),
then `layernorm_embedding`. BART's blocks are post-norm (a LayerNorm after each residual, cross-attention's
included); mBART's are pre-norm and each stack ends in a LayerNorm. The logits carry `final_logits_bias`.

The network is the shared `EncoderDecoder` of two `TransformerModel`s, so masking, pruning and hooks work as on
every family; heads are keyed ("encoder", i), ("decoder", i) (an integer layer means the decoder's) and
("cross", i), as on Whisper. Marian (models/families/marian.py) reuses these parts with sinusoidal positions.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, hf_config_with_stacked_pruned_heads, stacked_pruned_heads_from_hf
from ..encoder_decoder import EncoderDecoder
from ..heads import HeadFormat
from ..text_to_text import TASK, TEXT_TO_TEXT_INPUTS
from ..transformer import TransformerModel
from .base import Family, StateDict, refuse_unsupported, register, rename

POSITION_OFFSET = 2  # fairseq kept rows 0 and 1 of the position table for padding; positions start at row 2
# files a BART folder carries besides weights, config and tokenizer.json, copied as they are on save
AUX_FILES = ("generation_config.json", "vocab.json", "merges.txt", "sentencepiece.bpe.model", "source.spm",
             "target.spm")


# ---------------------------------------------------------------------------- parts

class Seq2SeqEmbeddings(nn.Module):
    """token * embed_scale + position, then an optional LayerNorm (BART's `layernorm_embedding`).

    `word` may be shared with the other stack (BART) or the stack's own (Marian with separate vocabularies).
    An `inputs_embeds` replacing the token embedding is taken as it is (unscaled), as transformers' BART does."""

    def __init__(self, word: nn.Embedding, position: nn.Module, embed_scale: float, position_offset: int = 0,
                 layer_norm: nn.LayerNorm | None = None, scale_given_embeds: bool = False) -> None:
        super().__init__()
        self.word = word
        self.position = position
        self.embed_scale = embed_scale
        self.position_offset = position_offset
        self.norm = layer_norm
        self.scale_given_embeds = scale_given_embeds  # Marian's decoder scales given embeddings too

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        if inputs_embeds is None:
            x = self.word(input_ids) * self.embed_scale  # (B, T, d)
        else:
            x = inputs_embeds * self.embed_scale if self.scale_given_embeds else inputs_embeds
        x = x + self.position(positions + self.position_offset)  # (B, T, d)
        return self.norm(x) if self.norm is not None else x


class Seq2SeqLMHead(nn.Module):
    """The tied unembedding plus `final_logits_bias` (1, vocab), a buffer in transformers too (never trained)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.register_buffer("final_logits_bias", torch.zeros(1, cfg.vocab_size))

    def forward(self, final, extras, attention_mask):
        return self.decoder(final) + self.final_logits_bias  # (B, T, vocab)


def seq2seq_lm_head(architecture: str) -> HeadFormat:
    return HeadFormat(architecture, lambda cfg, n: Seq2SeqLMHead(cfg),
                      [("lm_head.weight", "decoder.weight"), ("final_logits_bias", "final_logits_bias")],
                      tied="decoder.weight")


def pruned_from_hf(hf: dict[str, Any]) -> dict[tuple[str, int], list[int]]:
    """Pruned heads of every stack, kept in config.json under our own key: transformers' BART and Marian cannot
    prune, and their `pruned_heads` takes integer layer keys only."""
    return stacked_pruned_heads_from_hf(hf, "decoder")


def config_to_hf(cfg: ModelConfig) -> dict[str, Any]:
    hf = hf_config_with_stacked_pruned_heads(cfg)
    if cfg.vocab_size != logits_size(hf):  # a grown vocabulary (model.add_tokens): one shared table grew
        hf["vocab_size"] = cfg.vocab_size
        if "decoder_vocab_size" in hf:  # Marian sharing its table: the logits' size is the same number
            hf["decoder_vocab_size"] = cfg.vocab_size
    return hf


def logits_size(hf: dict[str, Any]) -> int:
    """The logits' width a BART-type config.json gives: Marian's decoder_vocab_size with separate tables."""
    if hf.get("share_encoder_decoder_embeddings", True) is False:
        return hf.get("decoder_vocab_size") or hf["vocab_size"]
    return hf["vocab_size"]


def seq2seq_config(family: str, hf: dict[str, Any], activation: str, vocab_size: int) -> ModelConfig:
    """The decoder's config (the main stack: the trace's `attentions` and logits are the decoder's)."""
    n_heads = hf["decoder_attention_heads"]
    return ModelConfig(
        family=family, n_layers=hf["decoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=hf["d_model"],
        d_head=hf["d_model"] // n_heads, d_mlp=hf["decoder_ffn_dim"], vocab_size=vocab_size,
        max_positions=hf.get("max_position_embeddings", 1024), norm_eps=1e-5, activation=activation, causal=True,
        pad_token_id=hf.get("pad_token_id"), bos_token_id=hf.get("decoder_start_token_id"),
        eos_token_id=hf.get("eos_token_id"), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_from_hf(hf),
        other_stacks={"encoder": (hf["encoder_layers"], hf["encoder_attention_heads"]),
                      "cross": (hf["decoder_layers"], n_heads)},
        hf_config=dict(hf))


def encoder_view(encoder_vocab: Callable[[dict[str, Any]], int]) -> Callable[[ModelConfig], ModelConfig]:
    """The encoder's one-stack view of a BART-type config (heads keyed ("encoder", layer))."""
    def view(cfg: ModelConfig) -> ModelConfig:
        hf = cfg.hf_config
        n_heads = hf["encoder_attention_heads"]
        return ModelConfig(
            family=cfg.family, n_layers=hf["encoder_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=cfg.d_model,
            d_head=cfg.d_model // n_heads, d_mlp=hf["encoder_ffn_dim"], vocab_size=encoder_vocab(hf),
            max_positions=cfg.max_positions, norm_eps=cfg.norm_eps, activation=cfg.activation,
            pad_token_id=cfg.pad_token_id, eos_token_id=cfg.eos_token_id,
            pruned_heads={k: v for k, v in cfg.pruned_heads.items() if k[0] == "encoder"}, hf_config=hf)
    return view


def build_seq2seq(cfg: ModelConfig, view: Callable[[ModelConfig], ModelConfig], encoder_embed: nn.Module,
                  decoder_embed: nn.Module, pre_norm: bool) -> EncoderDecoder:
    """Post-norm blocks (BART, Marian) or pre-norm blocks with a final norm per stack (mBART)."""
    layout = dict(norm_kind="layer", norm_first=pre_norm, gated_mlp=False, uses_rotary=False, final_norm=pre_norm)
    encoder = TransformerModel(view(cfg), encoder_embed, stack="encoder", **layout)
    decoder = TransformerModel(cfg, decoder_embed, stack="decoder", cross_stack="cross", **layout)
    return EncoderDecoder(cfg, encoder, decoder, view)


def layer_pairs(stack: str, n_layers: int, cross: bool) -> list[tuple[str, str]]:
    """(HF name under `model.`, our name) of every weight of one stack's layers."""
    pairs = []
    attentions = {"attn": "self_attn"} | ({"cross_attn": "encoder_attn"} if cross else {})
    norms = {"ln1": "self_attn_layer_norm", "ln2": "final_layer_norm"} | (
        {"ln_cross": "encoder_attn_layer_norm"} if cross else {})
    for i in range(n_layers):
        h, o = f"{stack}.layers.{i}.", f"{stack}.blocks.{i}."
        for p in ("weight", "bias"):
            for ours, theirs in attentions.items():
                pairs += [(f"{h}{theirs}.{proj}_proj.{p}", f"{o}{ours}.{proj}_proj.{p}") for proj in "qkv"]
                pairs.append((f"{h}{theirs}.out_proj.{p}", f"{o}{ours}.o_proj.{p}"))
            pairs += [(f"{h}{theirs}.{p}", f"{o}{ours}.{p}") for ours, theirs in norms.items()]
            pairs += [(f"{h}fc1.{p}", f"{o}mlp.fc_in.{p}"), (f"{h}fc2.{p}", f"{o}mlp.fc_out.{p}")]
    return pairs


def token_embeddings_from_hf(sd: StateDict, shared: bool) -> StateDict:
    """Our token-embedding weights: one `shared.weight` for both stacks, or each stack's own `embed_tokens`.
    Some checkpoints (bart-large-cnn) keep the shared table under `decoder.embed_tokens` only."""
    if shared:
        for name in ("shared.weight", "decoder.embed_tokens.weight", "encoder.embed_tokens.weight"):
            if name in sd:
                return {"encoder.embed.word.weight": sd[name], "decoder.embed.word.weight": sd[name]}
        raise KeyError("shared.weight")
    return rename(sd, [("encoder.embed_tokens.weight", "encoder.embed.word.weight"),
                       ("decoder.embed_tokens.weight", "decoder.embed.word.weight")])


def token_embeddings_to_hf(sd: StateDict, shared: bool) -> StateDict:
    """One `shared.weight` when shared (transformers ties both stacks' `embed_tokens` to it on load)."""
    if shared:
        return {"shared.weight": sd["decoder.embed.word.weight"]}
    return rename(sd, [("encoder.embed.word.weight", "encoder.embed_tokens.weight"),
                       ("decoder.embed.word.weight", "decoder.embed_tokens.weight")])


# ---------------------------------------------------------------------------- BART and mBART

# keys transformers' BART and mBART code reads, each mapped, refused or set aside (tests/models/test_config_keys.py).
# Layer drop acts in training only; hidden_size and num_hidden_layers are aliases of d_model and encoder_layers.
IGNORED_KEYS = ("encoder_layerdrop", "decoder_layerdrop", "hidden_size", "num_hidden_layers")
# generation: decoder_start_token_id starts the decoder; forced_bos_token_id and forced_eos_token_id are applied by
# the greedy loop as transformers' generate applies them (models/families/seq2seq_generation.py)
READ_KEYS = ("activation_function", "d_model", "decoder_attention_heads", "decoder_ffn_dim", "decoder_layers",
             "decoder_start_token_id", "encoder_attention_heads", "encoder_ffn_dim", "encoder_layers", "eos_token_id",
             "forced_bos_token_id", "forced_eos_token_id", "is_encoder_decoder", "max_position_embeddings",
             "pad_token_id", "scale_embedding", "tie_word_embeddings", "vocab_size")


def _is_mbart(cfg: ModelConfig) -> bool:
    return cfg.family == "mbart"


def _config(hf: dict[str, Any]) -> ModelConfig:
    mbart = hf.get("model_type") == "mbart"
    refuse_unsupported(hf, "mBART" if mbart else "BART", activation_function=lambda v: v in ACTIVATIONS,
                       is_encoder_decoder=lambda v: v is True)
    return seq2seq_config("mbart" if mbart else "bart", hf, hf.get("activation_function", "gelu"), hf["vocab_size"])


def _build(cfg: ModelConfig) -> EncoderDecoder:
    hf = cfg.hf_config
    scale = math.sqrt(cfg.d_model) if hf.get("scale_embedding") else 1.0
    word = nn.Embedding(cfg.vocab_size, cfg.d_model)  # one table for both stacks (`model.shared`)

    def embeddings() -> Seq2SeqEmbeddings:
        position = nn.Embedding(cfg.max_positions + POSITION_OFFSET, cfg.d_model)
        return Seq2SeqEmbeddings(word, position, scale, POSITION_OFFSET, nn.LayerNorm(cfg.d_model))
    return build_seq2seq(cfg, _encoder_view, embeddings(), embeddings(), pre_norm=_is_mbart(cfg))


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    hf = cfg.hf_config
    pairs = []
    for stack in ("encoder", "decoder"):
        pairs.append((f"{stack}.embed_positions.weight", f"{stack}.embed.position.weight"))
        pairs += [(f"{stack}.layernorm_embedding.{p}", f"{stack}.embed.norm.{p}") for p in ("weight", "bias")]
        if _is_mbart(cfg):
            pairs += [(f"{stack}.layer_norm.{p}", f"{stack}.final_norm.{p}") for p in ("weight", "bias")]
        pairs += layer_pairs(stack, hf[f"{stack}_layers"], cross=stack == "decoder")
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return {**rename(sd, _pairs(cfg)), **token_embeddings_from_hf(sd, shared=True)}


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return {**rename(sd, [(o, h) for h, o in _pairs(cfg)]), **token_embeddings_to_hf(sd, shared=True)}


_encoder_view = encoder_view(lambda hf: hf["vocab_size"])


def _family(name: str, model_type: str, prefix: str) -> Family:
    """BART and mBART: one config mapping, network and converters; the records differ in the class names saved."""
    return register(Family(
        name=name, model_types=(model_type,), config_from_hf=_config, config_to_hf=config_to_hf, build=_build,
        state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
        base_architecture=lambda cfg: f"{prefix}Model",
        heads={TASK: seq2seq_lm_head(f"{prefix}ForConditionalGeneration")},
        default_task=TASK, inputs=TEXT_TO_TEXT_INPUTS, extra_files=AUX_FILES))


BART = _family("bart", "bart", "Bart")
MBART = _family("mbart", "mbart", "MBart")
