"""Falcon (Almazrouei et al. 2023): LayerNorm blocks with rotary positions and one fused q/k/v projection, in
three generations the config switches between:

- Falcon-RW (`multi_query` false, `parallel_attn` false): multi-head attention, sequential pre-norm blocks;
- Falcon-7B (`multi_query`): every query head reads one key/value head; attention and MLP in parallel on one norm;
- Falcon-40B/180B (`new_decoder_architecture`): `num_kv_heads` grouped key/value heads; attention and MLP in
  parallel on two norms (`num_ln_in_parallel_attn` 2, the default) or one.

All three fuse q, k and v as one layout: for each key/value head, its group of query heads, then its key, then
its value (multi-head attention is groups of one; multi-query one group of all). ALiBi (Falcon-RW-1B) is refused.
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

# every config key transformers' Falcon reads that changes the arithmetic, with FalconConfig's default (config.json
# leaves out the keys that equal it); each is mapped in `_config` or refused in `_check`. None means: num_kv_heads
# as many as the query heads, ffn_hidden_size 4 * hidden_size, num_ln_in_parallel_attn 2 in the new architecture;
# `n_embed`, an older name of hidden_size, wins over it when a config has it
DEFAULTS: dict[str, Any] = {
    "vocab_size": 65024, "hidden_size": 4544, "num_hidden_layers": 32, "num_attention_heads": 71,
    "num_ln_in_parallel_attn": None, "layer_norm_epsilon": 1e-5, "num_kv_heads": None, "alibi": False,
    "new_decoder_architecture": False, "multi_query": True, "parallel_attn": True, "bias": False,
    "max_position_embeddings": 2048, "rope_theta": 10000.0, "rope_scaling": None, "bos_token_id": 11,
    "eos_token_id": 11, "pad_token_id": None, "ffn_hidden_size": None, "activation": "gelu", "n_embed": None,
    "tie_word_embeddings": True, "pruned_heads": {},
}
READ_KEYS = tuple(DEFAULTS)
IGNORED_KEYS = ("attention_dropout", "hidden_dropout", "classifier_dropout",  # dropout: training only
                "original_max_position_embeddings")  # original_max_position_embeddings: read by scaled rotary types only, and rope_scaling is refused
# head_dim and partial_rotary_factor: transformers' rotary table reads them when a config.json carries them
REFUSED_KEYS = ("alibi", "rope_scaling", "activation", "parallel_attn", "num_ln_in_parallel_attn", "num_kv_heads",
                "head_dim", "partial_rotary_factor")
READ_KEYS = READ_KEYS + ("head_dim", "partial_rotary_factor")


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute (or transformers itself cannot run)."""
    new, heads = hf["new_decoder_architecture"], hf["num_attention_heads"]
    refuse_unsupported(
        hf, "Falcon", alibi=lambda v: not v,  # ALiBi's linear position biases are not implemented
        rope_scaling=lambda v: not v or v.get("rope_type", v.get("type")) in (None, "default"),
        activation=lambda v: v in ACTIVATIONS,
        head_dim=lambda v: v in (None, hf["hidden_size"] // heads), partial_rotary_factor=lambda v: v in (None, 1, 1.0),
        # the new architecture's layers are always parallel: without parallel_attn transformers builds no norms it
        # then reads; the old one has a single parallel norm only
        parallel_attn=lambda v: v or not new,
        num_ln_in_parallel_attn=lambda v: v in (None, 1, 2) and (new or v in (None, 1) or not hf["parallel_attn"]),
        # multi-head attention splits keys and values per query head: any other count cannot run there
        num_kv_heads=lambda v: new or hf["multi_query"] or v in (None, heads))


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads = hf["num_attention_heads"]
    d = hf["n_embed"] or hf["hidden_size"]
    if hf["new_decoder_architecture"]:
        n_kv = hf["num_kv_heads"] or n_heads
    else:
        n_kv = 1 if hf["multi_query"] else n_heads
    return ModelConfig(
        family="falcon", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_kv, d_model=d,
        d_head=d // n_heads, d_mlp=hf["ffn_hidden_size"] or 4 * d, vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"], norm_eps=hf["layer_norm_epsilon"], activation=hf["activation"],
        causal=True, bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"], rope_theta=float(hf["rope_theta"]),
        attention_bias=hf["bias"], output_bias=hf["bias"], mlp_bias=hf["bias"],
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _layout(cfg: ModelConfig) -> tuple[str | None, dict[str, str]]:
    """The block's parallel layout and {our norm: Falcon's norm}."""
    hf = {**DEFAULTS, **cfg.hf_config}
    if hf["new_decoder_architecture"] and hf["num_ln_in_parallel_attn"] in (None, 2):
        return "two_norms", {"ln1": "ln_attn", "ln2": "ln_mlp"}
    if hf["parallel_attn"]:
        return "shared_norm", {"ln1": "input_layernorm"}
    return None, {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"}


def _build(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=True, final_norm=True, parallel=_layout(cfg)[0])


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) for everything but the fused q/k/v."""
    params = ("weight", "bias") if cfg.attention_bias else ("weight",)
    pairs = [("word_embeddings.weight", "embed.word.weight"), ("ln_f.weight", "final_norm.weight"),
             ("ln_f.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, _layout(cfg)[1])
        pairs += layer_pairs(hf, ours, {"attn.o_proj": "self_attention.dense", "mlp.fc_in": "mlp.dense_h_to_4h",
                                        "mlp.fc_out": "mlp.dense_4h_to_h"}, params)
    return pairs


def _groups(cfg: ModelConfig, layer: int) -> list[int]:
    """How many query heads each key/value head of `layer` still has, in order (uneven once heads are pruned)."""
    kv_of_head = [h // cfg.group_size for h in cfg.heads_in_layer(layer)]
    return [kv_of_head.count(kv) for kv in sorted(set(kv_of_head))]


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _pairs(cfg))
    for i in range(cfg.n_layers):
        for p in ("weight", "bias") if cfg.attention_bias else ("weight",):
            fused = sd[f"h.{i}.self_attention.query_key_value.{p}"]  # (sum over groups of (g + 2) * dh, ...)
            sizes = [n * cfg.d_head for g in _groups(cfg, i) for n in (g, 1, 1)]
            chunks = fused.split(sizes, dim=0) if sizes else ()  # per key/value head: its queries, key, value
            for j, name in enumerate("qkv"):
                out[f"blocks.{i}.attn.{name}_proj.{p}"] = torch.cat([fused[:0], *chunks[j::3]], dim=0).contiguous()
    return out


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])
    for i in range(cfg.n_layers):
        groups = _groups(cfg, i)
        for p in ("weight", "bias") if cfg.attention_bias else ("weight",):
            q, k, v = (sd[f"blocks.{i}.attn.{name}_proj.{p}"] for name in "qkv")
            qs = q.split([g * cfg.d_head for g in groups], dim=0)
            ks, vs = k.split(cfg.d_head, dim=0), v.split(cfg.d_head, dim=0)
            out[f"h.{i}.self_attention.query_key_value.{p}"] = torch.cat(  # a layer without heads: empty
                [q[:0], *(t for parts in zip(qs, ks, vs) for t in parts)], dim=0).contiguous()
    return out


register(Family(
    name="falcon", model_types=("falcon",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "transformer.",
    base_architecture=lambda cfg: "FalconModel", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("FalconForCausalLM"),
           "sequence-classification": last_token_classification_head("FalconForSequenceClassification")},
))
