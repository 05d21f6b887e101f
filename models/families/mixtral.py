"""Mixtral (Jiang et al. 2024, "Mixtral of Experts"): Mistral's decoder with a sparse mixture of experts in
place of every MLP.

Grouped-query attention with rotary positions (and Mistral's sliding window on every layer when the config
sets one), RMSNorm, and in each block a router that sends every token to its top `num_experts_per_tok` of
`num_local_experts` SwiGLU experts: softmax over all experts, top-k, weights renormalised over the chosen
(models/experts.py). The helpers below the mapping are shared with Qwen2-MoE (qwen2_moe.py).
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..errors import UnsupportedArchitectureError
from ..experts import ExpertMLP, ExpertSettings
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..rotary import rotary_tables
from ..transformer import TransformerModel
from .base import Family, StateDict, register, rename

# config keys transformers' modeling_mixtral.py reads that change the arithmetic, each mapped or refused below
READ_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "hidden_act", "rms_norm_eps", "max_position_embeddings", "rope_theta",
    "rope_scaling",          # computed by models/rotary.py; refused here when rotary.py cannot compute it
    "sliding_window",        # every layer, as MistralModel's mask
    "num_local_experts", "num_experts_per_tok",
    "pad_token_id",          # the embedding's padding_idx: only its gradient changes; classifiers read the mask
    "router_jitter_noise",   # training only: noise on the router's input under model.train(), never at inference
)


def refuse(family: str, key: str, value: Any, why: str) -> UnsupportedArchitectureError:
    """The error for a config value the family does not implement, naming the key and the value."""
    return UnsupportedArchitectureError(
        f"{family} checkpoints with {key}={value!r} are not supported ({why}): the workbench would compute something "
        "else than transformers, so it refuses the checkpoint rather than ignore the key.")


def check_common(hf: dict[str, Any], family: str, n_experts: int) -> None:
    """Refusals shared by the mixture-of-experts families: an activation the shared MLP lacks, more experts per
    token than there are."""
    if hf["hidden_act"] not in ACTIVATIONS:
        raise refuse(family, "hidden_act", hf["hidden_act"], f"known activations: {', '.join(ACTIVATIONS)}")
    k = hf["num_experts_per_tok"]
    if n_experts and not 0 < k <= n_experts:
        raise refuse(family, "num_experts_per_tok", k, f"the router chooses among {n_experts} experts")


def check_rotary(cfg: ModelConfig, family: str) -> ModelConfig:
    """Build the rotary table of one position now, so a `rope_scaling` models/rotary.py does not compute is
    refused when the checkpoint is read, not on its first run (and one it learns works here too)."""
    try:
        rotary_tables(cfg, torch.zeros(1, 1, dtype=torch.long), torch.float32)
    except UnsupportedArchitectureError:
        raise refuse(family, "rope_scaling", cfg.rope_scaling, "models/rotary.py does not compute it") from None
    return cfg


def decoder_config(hf: dict[str, Any], family: str, qkv_bias: bool, window_layers: tuple[str, ...] | None,
                   d_mlp: int) -> ModelConfig:
    """The attention side of a Mixtral- or Qwen2-MoE-type config, `hf` completed with the family's defaults (the
    experts are read from `cfg.hf_config` when the network is built)."""
    n_heads = hf["num_attention_heads"]
    window = {"sliding_window": int(hf["sliding_window"]), "layer_types": window_layers} if window_layers else {}
    cfg = ModelConfig(
        family=family, n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_model=hf["hidden_size"],
        d_head=hf.get("head_dim") or hf["hidden_size"] // n_heads, d_mlp=d_mlp, vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"], norm_eps=hf["rms_norm_eps"],
        activation=hf["hidden_act"], causal=True, bos_token_id=hf.get("bos_token_id"),
        eos_token_id=hf.get("eos_token_id"), pad_token_id=hf.get("pad_token_id"),
        tie_word_embeddings=hf["tie_word_embeddings"], rope_theta=hf["rope_theta"],
        rope_scaling=hf.get("rope_scaling"), attention_bias=qkv_bias, output_bias=False, mlp_bias=False,
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(hf), **window)
    return check_rotary(cfg, family)


# MixtralConfig's defaults, for a config.json that leaves a key out (transformers reads the same values then)
DEFAULTS = {"hidden_act": "silu", "max_position_embeddings": 4096 * 32, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
            "sliding_window": None, "num_experts_per_tok": 2, "num_local_experts": 8, "tie_word_embeddings": False}


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    check_common(hf, "Mixtral", hf["num_local_experts"])
    window = None
    if hf["sliding_window"] is not None:  # MixtralModel masks every layer with the same window
        window = ("sliding_attention",) * hf["num_hidden_layers"]
    return decoder_config(hf, "mixtral", qkv_bias=False, window_layers=window, d_mlp=hf["intermediate_size"])


def _experts(cfg: ModelConfig) -> ExpertSettings:
    hf = cfg.hf_config
    return ExpertSettings(n_experts=hf["num_local_experts"], top_k=hf["num_experts_per_tok"],
                          d_expert=cfg.d_mlp, renormalise=True, activation=cfg.activation)


def build_decoder(cfg: ModelConfig, make_mlp: Callable) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True,
                            uses_rotary=True, final_norm=True, make_mlp=make_mlp)


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_decoder(cfg, lambda cfg, layer: ExpertMLP(cfg.d_model, _experts(cfg), layer))


# ---------------------------------------------------------------- converters

def attention_pairs(cfg: ModelConfig, hf: str, ours: str) -> list[tuple[str, str]]:
    """(HF name, our name) of one layer's attention and its two norms (Llama's layout)."""
    pairs = [(f"{hf}self_attn.{p}_proj.weight", f"{ours}attn.{p}_proj.weight") for p in "qkvo"]
    if cfg.attention_bias:
        pairs += [(f"{hf}self_attn.{p}_proj.bias", f"{ours}attn.{p}_proj.bias") for p in "qkv"]
    return pairs + [(f"{hf}input_layernorm.weight", f"{ours}ln1.weight"),
                    (f"{hf}post_attention_layernorm.weight", f"{ours}ln2.weight")]


def swiglu_pairs(hf: str, ours: str, names: tuple[str, str, str] = ("gate_proj", "up_proj", "down_proj")
                 ) -> list[tuple[str, str]]:
    """(HF name, our name) of one SwiGLU MLP whose gate, up and down projections the checkpoint calls `names`."""
    return [(f"{hf}{theirs}.weight", f"{ours}{mine}.weight") for theirs, mine in zip(names, ("gate", "fc_in", "fc_out"))]


def body_pairs(cfg: ModelConfig, mlp_pairs: Callable[[int, str, str], list[tuple[str, str]]]) -> list[tuple[str, str]]:
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("norm.weight", "final_norm.weight")]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += attention_pairs(cfg, hf, ours) + mlp_pairs(i, hf, ours)
    return pairs


def _mlp_pairs(cfg: ModelConfig) -> Callable[[int, str, str], list[tuple[str, str]]]:
    def pairs(layer: int, hf: str, ours: str) -> list[tuple[str, str]]:
        moe, mine = f"{hf}block_sparse_moe.", f"{ours}mlp."
        out = [(f"{moe}gate.weight", f"{mine}router.weight")]  # Mixtral's "gate" is the router
        for e in range(_experts(cfg).n_experts):  # w1 gates, w3 goes up, w2 comes down
            out += swiglu_pairs(f"{moe}experts.{e}.", f"{mine}experts.{e}.", ("w1", "w3", "w2"))
        return out
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, body_pairs(cfg, _mlp_pairs(cfg)))


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, [(ours, hf) for hf, ours in body_pairs(cfg, _mlp_pairs(cfg))])


def text_heads(prefix: str) -> dict:
    """The four text heads transformers has for these decoders (`prefix`: "Mixtral", "Qwen2Moe")."""
    return {"causal-lm": causal_lm_head(f"{prefix}ForCausalLM"),
            "sequence-classification": last_token_classification_head(f"{prefix}ForSequenceClassification"),
            "token-classification": token_classification_head(f"{prefix}ForTokenClassification", "score"),
            "question-answering": question_answering_head(f"{prefix}ForQuestionAnswering")}


register(Family(
    name="mixtral", model_types=("mixtral",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "MixtralModel", default_task="causal-lm", heads=text_heads("Mixtral"),
))
