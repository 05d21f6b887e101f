"""Phi-1, Phi-1.5 and Phi-2 (Gunasekar et al. 2023, Li et al. 2023): one LayerNorm per block read by attention
and MLP in parallel, x + attn(ln(x)) + mlp(ln(x)); rotary positions on the first `partial_rotary_factor` of each
head (rotate-half layout); biases everywhere, the unembedding's included. `qk_layernorm` puts one LayerNorm,
shared by every head, on each query and key head before rotary: the shared attention's per-head q/k norm.
"""
from __future__ import annotations

from typing import Any

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head, last_token_classification_head
from ..transformer import TransformerModel
from .base import Family, layer_pairs, refuse_unsupported, register, renamed_both_ways

# every config key transformers' Phi reads that changes the arithmetic, with PhiConfig's default (config.json leaves
# out the keys that equal it); each is mapped in `_config` or refused in `_check`. num_key_value_heads None means
# num_attention_heads, as PhiConfig sets it; head_dim (not a PhiConfig argument, read when a config has it) None
# means hidden_size // num_attention_heads
DEFAULTS: dict[str, Any] = {
    "vocab_size": 51200, "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24,
    "num_attention_heads": 32, "num_key_value_heads": None, "head_dim": None, "hidden_act": "gelu_new",
    "max_position_embeddings": 2048, "layer_norm_eps": 1e-5, "tie_word_embeddings": False, "rope_theta": 10000.0,
    "rope_scaling": None, "partial_rotary_factor": 0.5, "qk_layernorm": False, "bos_token_id": 1, "eos_token_id": 2,
    "pad_token_id": None, "pruned_heads": {},
}
READ_KEYS = tuple(DEFAULTS)
IGNORED_KEYS = ("attention_dropout", "embd_pdrop", "resid_pdrop",  # dropout: training only
                "original_max_position_embeddings")  # original_max_position_embeddings: read by scaled rotary types only, and rope_scaling is refused
REFUSED_KEYS = ("rope_scaling", "hidden_act", "head_dim", "partial_rotary_factor")


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    plain_width = hf["hidden_size"] // hf["num_attention_heads"]
    refuse_unsupported(hf, "Phi", hidden_act=lambda v: v in ACTIVATIONS,
                       rope_scaling=lambda v: not v or v.get("rope_type", v.get("type")) in (None, "default"),
                       # transformers sizes the q/k LayerNorms by hidden_size // heads, so another head_dim cannot run
                       head_dim=lambda v: v in (None, plain_width) or not hf["qk_layernorm"],
                       # it slices int(d_head * factor) dims but its angle table is even: odd widths cannot run there
                       partial_rotary_factor=lambda v: int((hf["head_dim"] or plain_width) * v) % 2 == 0)


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads = hf["num_attention_heads"]
    d_head = hf["head_dim"] or hf["hidden_size"] // n_heads
    return ModelConfig(
        family="phi", n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf["num_key_value_heads"] or n_heads, d_model=hf["hidden_size"], d_head=d_head,
        d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
        norm_eps=hf["layer_norm_eps"], activation=hf["hidden_act"], causal=True,
        bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"], rope_theta=float(hf["rope_theta"]),
        rotary_dim=int(d_head * hf["partial_rotary_factor"]),
        qk_norm=bool(hf["qk_layernorm"]),  # a LayerNorm over d_head, shared by the heads: the core's q/k norm
        attention_bias=True, output_bias=True, mlp_bias=True,
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=True, final_norm=True, parallel="shared_norm")


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("final_layernorm.weight", "final_norm.weight"),
             ("final_layernorm.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        modules = {"ln1": "input_layernorm", "mlp.fc_in": "mlp.fc1", "mlp.fc_out": "mlp.fc2",
                   "attn.q_proj": "self_attn.q_proj", "attn.k_proj": "self_attn.k_proj",
                   "attn.v_proj": "self_attn.v_proj", "attn.o_proj": "self_attn.dense"}
        if cfg.qk_norm:
            modules |= {"attn.q_norm": "self_attn.q_layernorm", "attn.k_norm": "self_attn.k_layernorm"}
        pairs += layer_pairs(hf, ours, modules)
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


register(Family(
    name="phi", model_types=("phi",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "PhiModel", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("PhiForCausalLM", bias=True),
           "sequence-classification": last_token_classification_head("PhiForSequenceClassification")},
))
