"""OLMo 2 (OLMo team 2024, "2 OLMo 2 Furious"): a Llama-type decoder with its norms after each sublayer.

Each block is x + norm(attn(x)), then x + norm(mlp(x)) (the "post_sublayer" layout: no norm on a sublayer's
input), and q and k are RMS-normalised over the whole projection, every head together, before rotary
(Qwen3 normalises each head alone). q, k, v and o carry a bias by `attention_bias`; the MLP never does.

Pruning stays exact: the q/k norm's statistic counts every original head, so a pruned layer keeps the removed
heads' projection rows for it (models/attention.py `ProjectionNorm`), and a pruned checkpoint stores them under
`self_attn.{q,k}_norm.pruned_rows` (transformers cannot load a pruned Llama-type checkpoint in any case).
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head, last_token_classification_head
from ..rotary import rope_type
from ..transformer import TransformerModel
from .base import Family, register, renamed_both_ways
from .llama import COMMON_DEFAULTS, check_decoder, decoder_config, decoder_pairs, refuse

# config keys transformers' modeling_olmo2.py, configuration_olmo2.py and the rope utilities read that change
# the arithmetic: each is mapped by decoder_config or refused by check_decoder (models/families/llama.py)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "attention_bias",
    "rope_theta", "rope_scaling", "max_position_embeddings", "original_max_position_embeddings",
    "partial_rotary_factor",
    "pad_token_id",              # the embedding's padding_idx: its gradient only; classifiers read the mask
    "tie_word_embeddings",
)
REFUSED_KEYS = ("rope_scaling", "hidden_act", "partial_rotary_factor")
IGNORED_KEYS = ("attention_dropout", "initializer_range", "use_cache", "bos_token_id", "eos_token_id")

POST_NORMS = {"ln1_post": "post_attention_layernorm", "ln2_post": "post_feedforward_layernorm"}
PROJECTION_NORMS = {"attn.q_norm": "self_attn.q_norm", "attn.k_norm": "self_attn.k_norm"}


DEFAULTS = {**COMMON_DEFAULTS, "max_position_embeddings": 2048, "rms_norm_eps": 1e-5}  # Olmo2Config's


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **hf}
    check_decoder(hf, "olmo2")
    if rope_type(hf.get("rope_scaling")) not in ("default", "linear", "dynamic"):
        raise refuse("olmo2", "rope_scaling", hf["rope_scaling"], "Olmo2Config takes linear or dynamic scaling only")
    return decoder_config(hf, "olmo2", (None, None, False))


def _build(cfg: ModelConfig) -> TransformerModel:
    model = TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True,
                             uses_rotary=True, final_norm=True, norms="post_sublayer")
    for layer, block in enumerate(model.blocks):
        block.attn.norm_whole_projections(cfg.norm_eps, *_removed(cfg, layer))
    return model


def _removed(cfg: ModelConfig, layer: int) -> tuple[int, int]:
    """(query heads, key/value heads) a pruned checkpoint's layer has lost; a key/value head goes with its group."""
    heads = cfg.heads_in_layer(layer)
    kv_kept = {h // cfg.group_size for h in heads}
    return cfg.n_heads - len(heads), cfg.n_kv_heads - len(kv_kept)


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = decoder_pairs(cfg, norms={**POST_NORMS, **PROJECTION_NORMS})
    for layer in range(cfg.n_layers):  # the rows a pruned layer keeps for its q/k norms (see the module docstring)
        for n, (ours, theirs) in zip(_removed(cfg, layer), PROJECTION_NORMS.items()):
            params = ("weight", "bias") if cfg.attention_bias else ("weight",)
            pairs += [(f"layers.{layer}.{theirs}.pruned_rows.{p}", f"blocks.{layer}.{ours}.pruned_rows.{p}")
                      for p in params if n]
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


register(Family(
    name="olmo2", model_types=("olmo2",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "Olmo2Model", default_task="causal-lm",
    # transformers 4.57 has no Olmo2ForSequenceClassification: the head is the Llama-type `score` at the last real
    # token, for heads trained here (its checkpoints name an architecture only this workbench reads)
    heads={"causal-lm": causal_lm_head("Olmo2ForCausalLM"),
           "sequence-classification": last_token_classification_head("Olmo2ForSequenceClassification")},
))
