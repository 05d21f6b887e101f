"""GPT-NeoX (Black et al. 2022) and Pythia (Biderman et al. 2023): the standard models of interpretability work.

LayerNorm blocks with partial rotary positions (the first `rotary_pct` of each head turns) and, by default, a
parallel residual: attention and MLP both read the block input through their own norms,
x + attn(ln1(x)) + mlp(ln2(x)). q, k and v are one fused projection laid out head by head ([q_h, k_h, v_h]
for each head h), split here into the three projections the shared attention uses.
"""
from __future__ import annotations

from typing import Any

import torch

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head, last_token_classification_head
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename

# every config key transformers' GPT-NeoX reads that changes the arithmetic, with GPTNeoXConfig's default (config.json
# leaves out the keys that equal it); each is mapped in `_config` or refused in `_check`
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50432, "hidden_size": 6144, "num_hidden_layers": 44, "num_attention_heads": 64,
    "intermediate_size": 24576, "hidden_act": "gelu", "rotary_pct": 0.25, "rotary_emb_base": 10000,
    "max_position_embeddings": 2048, "layer_norm_eps": 1e-5, "use_parallel_residual": True, "rope_scaling": None,
    "attention_bias": True, "tie_word_embeddings": False, "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": None,
    "pruned_heads": {},
}
# GPTNeoXConfig copies rotary_pct into partial_rotary_factor and rotary_emb_base into rope_theta and reads the first
# two back, so the copies are never read; `rms_norm_eps` belongs to GPTNeoXDecoderLayer, a Llama-style layer the
# GPT-NeoX model never builds; `is_decoder` is read in a docstring only
READ_KEYS = (*DEFAULTS, "partial_rotary_factor", "rope_theta", "rms_norm_eps", "is_decoder")
IGNORED_KEYS = ("attention_dropout", "hidden_dropout", "classifier_dropout",  # dropout: training only
                "original_max_position_embeddings")  # original_max_position_embeddings: read by scaled rotary types only, and rope_scaling is refused
REFUSED_KEYS = ("rope_scaling", "hidden_act", "head_dim")  # head_dim: transformers' rotary table reads it if given
READ_KEYS = READ_KEYS + ("head_dim",)


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    refuse_unsupported(hf, "GPT-NeoX", hidden_act=lambda v: v in ACTIVATIONS,
                       rope_scaling=lambda v: not v or v.get("rope_type", v.get("type")) in (None, "default"),
                       head_dim=lambda v: v in (None, hf["hidden_size"] // hf["num_attention_heads"]))


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads, d = hf["num_attention_heads"], hf["hidden_size"]
    d_head = d // n_heads
    return ModelConfig(
        family="gpt_neox", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=d,
        d_head=d_head, d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"], norm_eps=hf["layer_norm_eps"], activation=hf["hidden_act"],
        causal=True, bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"], rope_theta=float(hf["rotary_emb_base"]),
        rotary_dim=int(d_head * hf["rotary_pct"]),  # as transformers rounds it; an odd count turns one more dim there too
        attention_bias=hf["attention_bias"], output_bias=hf["attention_bias"], mlp_bias=True,
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    parallel = "two_norms" if {**DEFAULTS, **cfg.hf_config}["use_parallel_residual"] else None
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=True, final_norm=True, parallel=parallel)


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) for everything but the fused q/k/v."""
    pairs = [("embed_in.weight", "embed.word.weight"), ("final_layer_norm.weight", "final_norm.weight"),
             ("final_layer_norm.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, {"ln1": "input_layernorm", "ln2": "post_attention_layernorm",
                                        "mlp.fc_in": "mlp.dense_h_to_4h", "mlp.fc_out": "mlp.dense_4h_to_h"})
        pairs += layer_pairs(hf, ours, {"attn.o_proj": "attention.dense"},
                             ("weight", "bias") if cfg.output_bias else ("weight",))
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _pairs(cfg))
    params = ("weight", "bias") if cfg.attention_bias else ("weight",)
    for i in range(cfg.n_layers):
        for p in params:
            fused = sd[f"layers.{i}.attention.query_key_value.{p}"]  # (H * 3 * dh, ...) head by head
            per_head = fused.reshape(-1, 3, cfg.d_head, *fused.shape[1:])  # (H, 3, dh, ...)
            for j, name in enumerate("qkv"):
                out[f"blocks.{i}.attn.{name}_proj.{p}"] = per_head[:, j].reshape(-1, *fused.shape[1:]).contiguous()
    return out


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])
    params = ("weight", "bias") if cfg.attention_bias else ("weight",)
    for i in range(cfg.n_layers):
        for p in params:
            q, k, v = (sd[f"blocks.{i}.attn.{name}_proj.{p}"] for name in "qkv")  # each (H * dh, ...)
            per_head = torch.stack([t.reshape(-1, cfg.d_head, *t.shape[1:]) for t in (q, k, v)], dim=1)  # (H, 3, dh, ...)
            out[f"layers.{i}.attention.query_key_value.{p}"] = per_head.reshape(-1, *q.shape[1:]).contiguous()
    return out


register(Family(
    name="gpt_neox", model_types=("gpt_neox",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "gpt_neox.",
    base_architecture=lambda cfg: "GPTNeoXModel", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("GPTNeoXForCausalLM", "embed_out.weight"),
           "sequence-classification": last_token_classification_head("GPTNeoXForSequenceClassification")},
))
