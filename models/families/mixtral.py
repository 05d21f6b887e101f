"""Mixtral (Jiang et al. 2024, "Mixtral of Experts"): Mistral's decoder with a sparse mixture of experts in
place of every MLP.

Grouped-query attention with rotary positions (and Mistral's sliding window on every layer when the config
sets one), RMSNorm, and in each block a router that sends every token to its top `num_experts_per_tok` of
`num_local_experts` SwiGLU experts: softmax over all experts, top-k, weights renormalised over the chosen
(models/experts.py). The attention side is the Llama-type decoder's (llama.py); the helpers after the
mapping (`check_experts`, `expert_modules`, `build_expert_decoder`, `text_heads`) are shared with Qwen2-MoE.
"""
from __future__ import annotations

from typing import Any, Callable

from torch import nn

from ..config import ModelConfig
from ..embeddings import TokenEmbeddings
from ..experts import ExpertMLP, ExpertSettings
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..transformer import TransformerModel
from .base import Family, register, renamed_both_ways
from .llama import check_decoder, decoder_config, decoder_pairs, refuse

# config keys transformers' modeling_mixtral.py, its configuration and the rope utilities read that change the
# arithmetic, each mapped or refused below (check_decoder refuses rope_scaling, hidden_act, partial_rotary_factor)
READ_KEYS = (
    "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "hidden_act", "rms_norm_eps", "rope_theta",
    "rope_scaling", "max_position_embeddings", "original_max_position_embeddings",  # models/rotary.py
    "partial_rotary_factor",  # read by the rope utilities; Mixtral rotates whole heads, so refused below 1
    "sliding_window",         # every layer, as MixtralModel's mask
    "num_local_experts", "num_experts_per_tok",
    "pad_token_id",           # the embedding's padding_idx: only its gradient changes; classifiers read the mask
    "tie_word_embeddings",
    "router_jitter_noise",    # handled by not applying it: noise on the router's input under model.train() only
)
# read by transformers, never a change to an inference forward's numbers
IGNORED_KEYS = (
    "router_aux_loss_coef", "output_router_logits",  # the load-balancing loss and whether to return the logits
    "initializer_range", "use_cache", "bos_token_id", "eos_token_id",
)

# MixtralConfig's defaults, for a config.json that leaves a key out (transformers reads the same values then)
DEFAULTS = {"hidden_act": "silu", "max_position_embeddings": 4096 * 32, "rms_norm_eps": 1e-5, "rope_theta": 1e6,
            "sliding_window": None, "num_experts_per_tok": 2, "num_local_experts": 8, "tie_word_embeddings": False}


def check_experts(hf: dict[str, Any], family: str, n_experts: int) -> None:
    """Refuse more experts per token than there are to choose from (transformers' top-k would fail)."""
    k = hf["num_experts_per_tok"]
    if n_experts and not 0 < k <= n_experts:
        raise refuse(family, "num_experts_per_tok", k, f"the router chooses among {n_experts} experts")


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    check_decoder(hf, "Mixtral")
    check_experts(hf, "Mixtral", hf["num_local_experts"])
    window = {}
    if hf["sliding_window"] is not None:  # MixtralModel masks every layer with the same window
        window = {"sliding_window": int(hf["sliding_window"]),
                  "layer_types": ("sliding_attention",) * hf["num_hidden_layers"]}
    return decoder_config(hf, "mixtral", (False, False, False), **window)


def _experts(cfg: ModelConfig) -> ExpertSettings:
    hf = cfg.hf_config
    return ExpertSettings(n_experts=hf["num_local_experts"], top_k=hf["num_experts_per_tok"],
                          d_expert=cfg.d_mlp, renormalise=True, activation=cfg.activation)


def build_expert_decoder(cfg: ModelConfig, make_mlp: Callable[[ModelConfig, int], nn.Module]) -> TransformerModel:
    """The Llama-type decoder with `make_mlp(cfg, layer)` in place of each dense MLP."""
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True,
                            uses_rotary=True, final_norm=True, make_mlp=make_mlp)


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_expert_decoder(cfg, lambda cfg, layer: ExpertMLP(cfg.d_model, _experts(cfg), layer))


# ---------------------------------------------------------------- converters

SWIGLU = ("gate", "fc_in", "fc_out")  # our names of a SwiGLU's gate, up and down projections


def expert_modules(moe: str, router: str, n_experts: int, expert: tuple[str, str, str]) -> dict[str, str]:
    """{our module: the checkpoint's} of one expert layer: the router, then each expert's gate, up and down
    (`expert` names them in the checkpoint), under the checkpoint's module `moe`."""
    table = {"mlp.router": f"{moe}.{router}"}
    for e in range(n_experts):
        table.update({f"mlp.experts.{e}.{mine}": f"{moe}.experts.{e}.{theirs}" for mine, theirs in zip(SWIGLU, expert)})
    return table


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    # Mixtral's "gate" is the router; in each expert w1 gates, w3 goes up and w2 comes down
    return decoder_pairs(cfg, mlp=expert_modules("block_sparse_moe", "gate", _experts(cfg).n_experts, ("w1", "w3", "w2")))


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


def text_heads(prefix: str) -> dict:
    """The four text heads transformers has for these decoders (`prefix`: "Mixtral", "Qwen2Moe"), all of which keep
    the body under `model.`."""
    return {"causal-lm": causal_lm_head(f"{prefix}ForCausalLM"),
            "sequence-classification": last_token_classification_head(f"{prefix}ForSequenceClassification"),
            "token-classification": token_classification_head(f"{prefix}ForTokenClassification", "score"),
            "question-answering": question_answering_head(f"{prefix}ForQuestionAnswering")}


register(Family(
    name="mixtral", model_types=("mixtral",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "MixtralModel", default_task="causal-lm", heads=text_heads("Mixtral"),
))
