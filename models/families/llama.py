"""Llama-type decoders (Touvron et al. 2023): Llama, Mistral, Qwen2, SmolLM.

RMSNorm, rotary positions, a SwiGLU MLP and grouped-query attention: several query heads
share one key/value head. Qwen2 adds biases to q, k and v; otherwise the checkpoints agree.
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..errors import UnsupportedArchitectureError
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..transformer import TransformerModel
from .base import Family, StateDict, by_model_type, register, rename


def _config(hf: dict[str, Any]) -> ModelConfig:
    n_heads = hf["num_attention_heads"]
    if hf.get("rope_scaling"):
        # scaled rotary variants (YaRN, linear, llama3) change the angle tables; not implemented yet
        raise UnsupportedArchitectureError(
            f"rope_scaling {hf['rope_scaling']!r} is not supported yet; only plain rotary embeddings are.")
    qkv_bias = hf.get("attention_bias", hf.get("model_type") == "qwen2")
    return ModelConfig(
        family="llama", n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_model=hf["hidden_size"],
        d_head=hf.get("head_dim") or hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 2048),
        norm_eps=hf.get("rms_norm_eps", 1e-6), activation=hf.get("hidden_act", "silu"), causal=True,
        bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"), pad_token_id=hf.get("pad_token_id"),
        tie_word_embeddings=hf.get("tie_word_embeddings", False), rope_theta=hf.get("rope_theta", 10000.0),
        attention_bias=bool(qkv_bias), output_bias=bool(hf.get("attention_bias", False)),
        mlp_bias=bool(hf.get("mlp_bias", False)),
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(hf),
        **_sliding_window(hf),
    )


def _sliding_window(hf: dict[str, Any]) -> dict[str, Any]:
    """Mistral attends within `sliding_window` on every layer; Qwen2 on the layers its `layer_types` name
    (from `max_window_layers` on) when `use_sliding_window` is set; Llama never."""
    window = hf.get("sliding_window")
    if hf.get("model_type") == "qwen2" and not hf.get("use_sliding_window"):
        window = None
    if hf.get("model_type") == "llama" or window is None:
        return {}
    n = hf["num_hidden_layers"]
    if hf.get("model_type") == "qwen2":
        first = hf.get("max_window_layers", n)
        types = hf.get("layer_types") or ["sliding_attention" if i >= first else "full_attention" for i in range(n)]
    else:
        types = ["sliding_attention"] * n
    return {"sliding_window": int(window), "layer_types": tuple(types)}


def _build(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True,
                            uses_rotary=True, final_norm=True)


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("norm.weight", "final_norm.weight")]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += [(f"{hf}self_attn.{p}_proj.weight", f"{ours}attn.{p}_proj.weight") for p in "qkvo"]
        if cfg.attention_bias:
            pairs += [(f"{hf}self_attn.{p}_proj.bias", f"{ours}attn.{p}_proj.bias") for p in "qkv"]
        if cfg.output_bias:
            pairs.append((f"{hf}self_attn.o_proj.bias", f"{ours}attn.o_proj.bias"))
        pairs += [(f"{hf}mlp.gate_proj.weight", f"{ours}mlp.gate.weight"),
                  (f"{hf}mlp.up_proj.weight", f"{ours}mlp.fc_in.weight"),
                  (f"{hf}mlp.down_proj.weight", f"{ours}mlp.fc_out.weight"),
                  (f"{hf}input_layernorm.weight", f"{ours}ln1.weight"),
                  (f"{hf}post_attention_layernorm.weight", f"{ours}ln2.weight")]
        if cfg.mlp_bias:
            pairs += [(f"{hf}mlp.{a}_proj.bias", f"{ours}mlp.{b}.bias")
                      for a, b in (("gate", "gate"), ("up", "fc_in"), ("down", "fc_out"))]
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, _pairs(cfg))


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])


register(Family(
    name="llama", model_types=("llama", "mistral", "qwen2"), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=by_model_type({"mistral": "MistralModel", "qwen2": "Qwen2Model"}, "LlamaModel"),
    default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("LlamaForCausalLM"),
           "sequence-classification": last_token_classification_head("LlamaForSequenceClassification"),
           "token-classification": token_classification_head("LlamaForTokenClassification", "score"),
           "question-answering": question_answering_head(
               "LlamaForQuestionAnswering",
               # Llama and Qwen2 keep the pre-2024 name `transformer` for this one task; Mistral uses `model`
               body_prefix=lambda cfg: "model." if cfg.hf_config.get("model_type") == "mistral" else "transformer.")},
))
