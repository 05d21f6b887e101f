"""Granite (IBM 2024, "Power scheduler"; Granite 3): a Llama-type decoder with four scalar multipliers.

The embeddings are multiplied by `embedding_multiplier`, each sublayer's output by `residual_multiplier`
before it joins the residual stream, attention scores by `attention_multiplier` (in place of 1 / sqrt(d_head)),
and the logits divided by `logits_scaling`. q, k, v and o carry a bias by `attention_bias`, the MLP by
`mlp_bias`, as in Llama.
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from ..heads import causal_lm_head, last_token_classification_head
from .base import Family, register, renamed_both_ways
from .llama import COMMON_DEFAULTS, build_decoder, check_decoder, decoder_config, decoder_pairs

# config keys transformers' modeling_granite.py, configuration_granite.py and the rope utilities read that change
# the arithmetic: each is mapped here or by decoder_config, or refused by check_decoder (models/families/llama.py)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "attention_bias", "mlp_bias",
    "rope_theta", "rope_scaling", "max_position_embeddings", "original_max_position_embeddings",
    "partial_rotary_factor",
    "embedding_multiplier", "residual_multiplier", "attention_multiplier", "logits_scaling",
    "pad_token_id",              # the embedding's padding_idx: its gradient only; classifiers read the mask
    "tie_word_embeddings",
)
REFUSED_KEYS = ("rope_scaling", "hidden_act", "partial_rotary_factor")
IGNORED_KEYS = ("attention_dropout", "initializer_range", "use_cache", "bos_token_id", "eos_token_id")


DEFAULTS = {**COMMON_DEFAULTS, "max_position_embeddings": 2048}  # GraniteConfig's


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    check_decoder(hf, "granite")
    return decoder_config(
        hf, "granite", (None, None, None),
        embed_scale=float(hf.get("embedding_multiplier", 1.0)),
        residual_scale=float(hf.get("residual_multiplier", 1.0)),
        attention_scale=float(hf.get("attention_multiplier", 1.0)),
        logits_scale=float(hf.get("logits_scaling", 1.0)))


_from_hf, _to_hf = renamed_both_ways(decoder_pairs)  # the table read one way, then the other


register(Family(
    name="granite", model_types=("granite",), config_from_hf=_config, build=build_decoder,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "GraniteModel", default_task="causal-lm",
    # transformers 4.57 has no GraniteForSequenceClassification: the head is the Llama-type `score` at the last real
    # token (no logits_scaling: that belongs to the LM head), for heads trained here
    heads={"causal-lm": causal_lm_head("GraniteForCausalLM"),
           "sequence-classification": last_token_classification_head("GraniteForSequenceClassification")},
))
