"""Qwen3 (Qwen team 2025): the Qwen2 decoder with an RMSNorm over each query and key head before rotary.

Unlike Qwen2, q, k, v and o carry a bias only when `attention_bias` says so, and `head_dim` is its own
setting (Qwen3-0.6B: 16 heads of 128 in a width of 1024). The sliding window, when `use_sliding_window` is
set, covers the layers `layer_types` names, from `max_window_layers` on, as in Qwen2.
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from .base import Family, StateDict, register, rename
from .llama import (COMMON_DEFAULTS, build_decoder, check_decoder, decoder_config, decoder_pairs,
                    sliding_window)

# config keys transformers' modeling_qwen3.py, configuration_qwen3.py and the rope utilities read that change
# the arithmetic: each is mapped by decoder_config or refused by check_decoder (models/families/llama.py)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "attention_bias",
    "rope_theta", "rope_scaling", "max_position_embeddings", "original_max_position_embeddings",
    "partial_rotary_factor",
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types",
    "pad_token_id",              # the embedding's padding_idx: its gradient only; classifiers read the mask
    "tie_word_embeddings",
)
REFUSED_KEYS = ("rope_scaling", "hidden_act", "partial_rotary_factor")
IGNORED_KEYS = ("attention_dropout", "initializer_range", "use_cache", "bos_token_id", "eos_token_id")


# Qwen3Config's values for keys a config.json leaves out (head_dim is not hidden / heads there)
DEFAULTS = {**COMMON_DEFAULTS, "max_position_embeddings": 32768, "head_dim": 128, "sliding_window": 4096,
            "use_sliding_window": False, "max_window_layers": 28}


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    check_decoder(hf, "qwen3")
    # q/k/v and o biased together, by attention_bias; the MLP never
    return decoder_config(hf, "qwen3", (None, None, False), qk_norm=True, **sliding_window(hf))


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, decoder_pairs(cfg))  # with q_norm and k_norm, since cfg.qk_norm


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, [(ours, hf) for hf, ours in decoder_pairs(cfg)])


register(Family(
    name="qwen3", model_types=("qwen3",), config_from_hf=_config, build=build_decoder,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "Qwen3Model", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("Qwen3ForCausalLM"),
           "sequence-classification": last_token_classification_head("Qwen3ForSequenceClassification"),
           "token-classification": token_classification_head("Qwen3ForTokenClassification", "score"),
           "question-answering": question_answering_head("Qwen3ForQuestionAnswering",
                                                         body_prefix=lambda cfg: "transformer.")},
))
