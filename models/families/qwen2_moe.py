"""Qwen2-MoE (Qwen team 2024, "Qwen1.5-MoE"): Qwen2's decoder (biased q/k/v) with mixture-of-experts MLPs.

Each sparse layer routes a token to its top `num_experts_per_tok` of `num_experts` small SwiGLU experts
(softmax over all, top-k, renormalised only with `norm_topk_prob`) and adds a shared expert that every token
passes through, scaled by sigmoid(shared_expert_gate(x)) (models/experts.py). A layer is sparse when it is not
in `mlp_only_layers` and (layer + 1) is a multiple of `decoder_sparse_step`; the others keep a dense SwiGLU.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..block import MLP
from ..config import ModelConfig
from ..experts import ExpertMLP, ExpertSettings
from ..transformer import TransformerModel
from .base import Family, layer_pairs, register, renamed_both_ways
from .llama import MLP as DENSE, check_decoder, decoder_config, decoder_pairs, refuse
from .mixtral import SWIGLU, build_expert_decoder, check_experts, expert_modules, text_heads

# config keys transformers' modeling_qwen2_moe.py, its configuration and the rope utilities read that change the
# arithmetic, each mapped or refused below (check_decoder refuses rope_scaling, hidden_act, partial_rotary_factor)
READ_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "hidden_act", "rms_norm_eps", "rope_theta",
    "rope_scaling", "max_position_embeddings", "original_max_position_embeddings",  # models/rotary.py
    "partial_rotary_factor",  # read by the rope utilities; Qwen2-MoE rotates whole heads, so refused below 1
    "qkv_bias",
    # eager and SDPA attention mask every layer with the window when use_sliding_window is set; only the
    # flash-attention path reads max_window_layers, so the reference (eager) numbers ignore it, as we do
    "use_sliding_window", "sliding_window", "max_window_layers",
    "num_experts", "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size",
    "norm_topk_prob", "decoder_sparse_step", "mlp_only_layers",
    "pad_token_id",           # the embedding's padding_idx: only its gradient changes; classifiers read the mask
    "tie_word_embeddings",
    "attn_implementation",    # which attention kernel: ours equals eager (the reference, window included)
    "get_text_config",        # a method of the config (to find the window), not a setting
)
# read by transformers, never a change to an inference forward's numbers
IGNORED_KEYS = (
    "router_aux_loss_coef", "output_router_logits",  # the load-balancing loss and whether to return the logits
    "initializer_range", "use_cache", "bos_token_id", "eos_token_id",
)

# Qwen2MoeConfig's defaults, for a config.json that leaves a key out (transformers reads the same values then)
DEFAULTS = {"hidden_act": "silu", "max_position_embeddings": 32768, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
            "tie_word_embeddings": False, "use_sliding_window": False, "sliding_window": 4096, "qkv_bias": True,
            "decoder_sparse_step": 1, "moe_intermediate_size": 1408, "shared_expert_intermediate_size": 5632,
            "num_experts_per_tok": 4, "num_experts": 60, "norm_topk_prob": False, "mlp_only_layers": []}


def _check(hf: dict[str, Any]) -> None:
    check_decoder(hf, "Qwen2-MoE")
    check_experts(hf, "Qwen2-MoE", hf["num_experts"])
    if hf["decoder_sparse_step"] < 1:  # transformers divides by it
        raise refuse("Qwen2-MoE", "decoder_sparse_step", hf["decoder_sparse_step"], "it must be 1 or more")


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    hf["mlp_only_layers"] = list(hf["mlp_only_layers"] or [])
    _check(hf)
    window = {}
    if hf["use_sliding_window"] and hf["sliding_window"] is not None:  # every layer: see READ_KEYS
        window = {"sliding_window": int(hf["sliding_window"]),
                  "layer_types": ("sliding_attention",) * hf["num_hidden_layers"]}
    # q/k/v biased as `qkv_bias` says, the output projection and the MLPs never
    return decoder_config(hf, "qwen2_moe", (bool(hf["qkv_bias"]), False, False), **window)


def is_sparse(cfg: ModelConfig, layer: int) -> bool:
    """Qwen2MoeDecoderLayer's rule for which layers route to experts."""
    hf = cfg.hf_config
    return (layer not in hf["mlp_only_layers"] and hf["num_experts"] > 0
            and (layer + 1) % hf["decoder_sparse_step"] == 0)


def _experts(cfg: ModelConfig) -> ExpertSettings:
    hf = cfg.hf_config
    return ExpertSettings(n_experts=hf["num_experts"], top_k=hf["num_experts_per_tok"],
                          d_expert=hf["moe_intermediate_size"], renormalise=bool(hf["norm_topk_prob"]),
                          d_shared=hf["shared_expert_intermediate_size"], activation=cfg.activation)


def _mlp(cfg: ModelConfig, layer: int) -> nn.Module:
    if is_sparse(cfg, layer):
        return ExpertMLP(cfg.d_model, _experts(cfg), layer)
    return MLP(cfg.d_model, cfg.d_mlp, cfg.activation, gated=True, bias=False)  # a dense layer: intermediate_size


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_expert_decoder(cfg, _mlp)


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = decoder_pairs(cfg, mlp={})  # embeddings, attention and norms; the MLPs differ from layer to layer
    n_experts = cfg.hf_config["num_experts"]
    for i in range(cfg.n_layers):
        if is_sparse(cfg, i):  # Qwen2-MoE's "gate" is the router
            modules = {**expert_modules("mlp", "gate", n_experts, ("gate_proj", "up_proj", "down_proj")),
                       "mlp.shared_gate": "mlp.shared_expert_gate",
                       **{f"mlp.shared.{mine}": f"mlp.shared_expert.{theirs}"
                          for mine, theirs in zip(SWIGLU, ("gate_proj", "up_proj", "down_proj"))}}
        else:
            modules = DENSE
        pairs += layer_pairs(f"layers.{i}.", f"blocks.{i}.", modules, ("weight",))
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


register(Family(
    name="qwen2_moe", model_types=("qwen2_moe",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "Qwen2MoeModel", default_task="causal-lm", heads=text_heads("Qwen2Moe"),
))
