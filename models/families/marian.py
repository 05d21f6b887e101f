"""Marian (Junczys-Dowmunt et al. 2018, "Marian: Fast Neural Machine Translation in C++"), the OPUS-MT models.

BART's post-norm encoder-decoder (models/families/bart.py) with fixed sinusoidal positions (sines in the first
half of each vector, cosines in the second, as transformers' MarianSinusoidalPositionalEmbedding; no offset),
no `layernorm_embedding`, and token embeddings scaled by sqrt(d_model) when `scale_embedding`. The two stacks
share one token table (`share_encoder_decoder_embeddings`, the default) or each has its own (both of `vocab_size`
rows, as transformers builds them), and then the logits have `decoder_vocab_size`.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig
from ..encoder_decoder import EncoderDecoder
from ..text_to_text import TASK, TEXT_TO_TEXT_INPUTS
from .bart import (AUX_FILES, Seq2SeqEmbeddings, build_seq2seq, config_to_hf, encoder_view, layer_pairs,
                   logits_size, seq2seq_config, seq2seq_lm_head, token_embeddings_from_hf, token_embeddings_to_hf)
from .base import Family, StateDict, refuse_unsupported, register, rename

# Marian checkpoints name the SiLU "swish" (transformers' ACT2FN maps it to nn.SiLU)
ACTIVATION_ALIASES = {"swish": "silu"}

# keys transformers' Marian code reads, each mapped, refused or set aside (tests/models/test_config_keys.py).
# Layer drop acts in training only; hidden_size and num_hidden_layers are aliases of d_model and encoder_layers.
IGNORED_KEYS = ("encoder_layerdrop", "decoder_layerdrop", "hidden_size", "num_hidden_layers")
# forced_eos_token_id (and forced_bos_token_id) are applied in generation as transformers' generate applies them;
# tie_encoder_decoder (the encoder's weights copied into the decoder) is refused
READ_KEYS = ("activation_function", "d_model", "decoder_attention_heads", "decoder_ffn_dim", "decoder_layers",
             "decoder_start_token_id", "decoder_vocab_size", "encoder_attention_heads", "encoder_ffn_dim",
             "encoder_layers", "eos_token_id", "forced_bos_token_id", "forced_eos_token_id", "is_encoder_decoder",
             "max_position_embeddings", "pad_token_id", "scale_embedding", "share_encoder_decoder_embeddings",
             "tie_encoder_decoder", "tie_word_embeddings", "vocab_size")


def marian_sinusoids(n_positions: int, dim: int) -> torch.Tensor:
    """(n_positions, dim): pos / 10000^(2 (j // 2) / dim); sines of the even columns, then cosines of the odd ones,
    in float64 and then rounded to float32, exactly as transformers builds the table."""
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]  # (P, 1)
    j = torch.arange(dim, dtype=torch.float64)[None, :]  # (1, dim)
    angles = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), 2 * torch.div(j, 2, rounding_mode="floor") / dim)
    sentinel = math.ceil(dim / 2)
    table = torch.empty(n_positions, dim, dtype=torch.float32)
    table[:, :sentinel] = angles[:, 0::2].sin().float()
    table[:, sentinel:] = angles[:, 1::2].cos().float()
    return table


def _shared(cfg_or_hf) -> bool:
    hf = cfg_or_hf.hf_config if isinstance(cfg_or_hf, ModelConfig) else cfg_or_hf
    return hf.get("share_encoder_decoder_embeddings", True)


def _config(hf: dict[str, Any]) -> ModelConfig:
    activation = ACTIVATION_ALIASES.get(hf.get("activation_function", "gelu"), hf.get("activation_function", "gelu"))
    # separate vocabularies: the decoder's table keeps `vocab_size` rows (transformers copies the shared one) and only
    # the logits have `decoder_vocab_size`; tied to a table of another size, transformers' own forward fails
    untied_or_same = not hf.get("tie_word_embeddings", True) or _shared(hf)
    refuse_unsupported(hf, "Marian", activation_function=lambda v: ACTIVATION_ALIASES.get(v, v) in ACTIVATIONS,
                       is_encoder_decoder=lambda v: v is True, tie_encoder_decoder=lambda v: not v,
                       decoder_vocab_size=lambda v: untied_or_same or v in (None, hf["vocab_size"]))
    return seq2seq_config("marian", hf, activation, logits_size(hf))


_encoder_view = encoder_view(lambda hf: hf["vocab_size"])


def _build(cfg: ModelConfig) -> EncoderDecoder:
    hf = cfg.hf_config
    scale = math.sqrt(cfg.d_model) if hf.get("scale_embedding") else 1.0
    encoder_word = nn.Embedding(hf["vocab_size"], cfg.d_model)
    decoder_word = encoder_word if _shared(cfg) else nn.Embedding(hf["vocab_size"], cfg.d_model)

    def embeddings(word: nn.Embedding, scale_given: bool) -> Seq2SeqEmbeddings:
        position = nn.Embedding(cfg.max_positions, cfg.d_model)
        position.weight.requires_grad_(False)  # fixed, as in transformers
        return Seq2SeqEmbeddings(word, position, scale, scale_given_embeds=scale_given)
    # transformers' Marian decoder scales given `inputs_embeds` too; its encoder does not
    return build_seq2seq(cfg, _encoder_view, embeddings(encoder_word, False), embeddings(decoder_word, True),
                         pre_norm=False)


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    hf = cfg.hf_config
    return [pair for stack in ("encoder", "decoder")
            for pair in layer_pairs(stack, hf[f"{stack}_layers"], cross=stack == "decoder")]


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    ours = {**rename(sd, _pairs(cfg)), **token_embeddings_from_hf(sd, _shared(cfg))}
    for stack in ("encoder", "decoder"):
        # transformers does not save the table (it is recomputed on load); a checkpoint that has it is read as it is
        saved = sd.get(f"{stack}.embed_positions.weight")
        ours[f"{stack}.embed.position.weight"] = (saved if saved is not None
                                                  else marian_sinusoids(cfg.max_positions, cfg.d_model))
    return ours


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    # positions left out, as transformers' save_pretrained leaves them out (`_keys_to_ignore_on_save`)
    return {**rename(sd, [(o, h) for h, o in _pairs(cfg)]), **token_embeddings_to_hf(sd, _shared(cfg))}


MARIAN = register(Family(
    name="marian", model_types=("marian",), config_from_hf=_config, config_to_hf=config_to_hf, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "MarianModel",
    heads={TASK: seq2seq_lm_head("MarianMTModel")},
    default_task=TASK, inputs=TEXT_TO_TEXT_INPUTS, extra_files=AUX_FILES,
))
