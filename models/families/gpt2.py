"""GPT-2 (Radford et al. 2019): pre-norm blocks, learned positions, fused q/k/v stored as Conv1D."""
from __future__ import annotations

from typing import Any

import torch

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import LearnedPositionEmbeddings
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..transformer import TransformerModel
from .base import Family, StateDict, refuse_unsupported, register


# every config key transformers' GPT-2 reads that changes the arithmetic, with GPT2Config's default (config.json leaves
# out the keys that equal it, even n_embd for a GPT-2 small shape); each is mapped in `_config` or refused in `_check`
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50257, "n_positions": 1024, "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": None,
    "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "scale_attn_weights": True,
    "scale_attn_by_inverse_layer_idx": False, "reorder_and_upcast_attn": False, "add_cross_attention": False,
    "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": None, "tie_word_embeddings": True,
    "pruned_heads": {},
}
# the attribute_map aliases of n_embd, n_positions, n_head and n_layer (the same values); the summary_* keys configure
# GPT2DoubleHeadsModel's multiple-choice head only, which the workbench does not build
READ_KEYS = (*DEFAULTS, "hidden_size", "max_position_embeddings", "num_attention_heads", "num_hidden_layers",
             "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels",
             "summary_first_dropout", "summary_last_dropout")
IGNORED_KEYS = ("attn_pdrop", "embd_pdrop", "resid_pdrop", "classifier_dropout", "hidden_dropout")  # training only
REFUSED_KEYS = ("activation_function", "add_cross_attention")


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    # add_cross_attention: GPT-2 as EncoderDecoderModel's decoder, whose cross-attention this family has no place for
    refuse_unsupported(hf, "GPT-2", activation_function=lambda v: v in ACTIVATIONS, add_cross_attention=lambda v: not v)


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    d, n_heads, n_layers = hf["n_embd"], hf["n_head"], hf["n_layer"]
    # scores are divided by sqrt(d_head) unless scale_attn_weights is off, and in layer i by i + 1 more with
    # scale_attn_by_inverse_layer_idx (ignored, the logits of a tiny model differed from transformers' by 13)
    base = (d // n_heads) ** -0.5 if hf["scale_attn_weights"] else 1.0
    per_layer = tuple(base / (i + 1) for i in range(n_layers)) if hf["scale_attn_by_inverse_layer_idx"] else None
    # reorder_and_upcast_attn computes the scores in float32 with the scale folded into the product: the workbench's
    # float32 scores, so nothing to switch on
    return ModelConfig(
        family="gpt2", n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_heads,
        d_model=d, d_head=d // n_heads, d_mlp=hf["n_inner"] or 4 * d, vocab_size=hf["vocab_size"],
        max_positions=hf["n_positions"], norm_eps=hf["layer_norm_epsilon"], activation=hf["activation_function"],
        causal=True, bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"], attention_scale=None if hf["scale_attn_weights"] else 1.0,
        attention_scales=per_layer, pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, LearnedPositionEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=False, final_norm=True)


def _widths(cfg: ModelConfig, layer: int) -> int:
    return len(cfg.heads_in_layer(layer)) * cfg.d_head


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = {"embed.word.weight": sd["wte.weight"], "embed.position.weight": sd["wpe.weight"],
           "final_norm.weight": sd["ln_f.weight"], "final_norm.bias": sd["ln_f.bias"]}
    for i in range(cfg.n_layers):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        w = _widths(cfg, i)
        # Conv1D keeps weights as (in, out): transpose to Linear's (out, in); c_attn fuses q, k, v
        # explicit sizes: split(0) of a layer whose heads are all pruned would give one chunk, not three
        q, k, v = sd[f"{hf}attn.c_attn.weight"].t().split([w, w, w], dim=0)
        qb, kb, vb = sd[f"{hf}attn.c_attn.bias"].split([w, w, w], dim=0)
        out.update({
            f"{ours}attn.q_proj.weight": q, f"{ours}attn.k_proj.weight": k, f"{ours}attn.v_proj.weight": v,
            f"{ours}attn.q_proj.bias": qb, f"{ours}attn.k_proj.bias": kb, f"{ours}attn.v_proj.bias": vb,
            f"{ours}attn.o_proj.weight": sd[f"{hf}attn.c_proj.weight"].t(),
            f"{ours}attn.o_proj.bias": sd[f"{hf}attn.c_proj.bias"],
            f"{ours}mlp.fc_in.weight": sd[f"{hf}mlp.c_fc.weight"].t(), f"{ours}mlp.fc_in.bias": sd[f"{hf}mlp.c_fc.bias"],
            f"{ours}mlp.fc_out.weight": sd[f"{hf}mlp.c_proj.weight"].t(), f"{ours}mlp.fc_out.bias": sd[f"{hf}mlp.c_proj.bias"],
        })
        for n, hn in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[f"{ours}{n}.weight"], out[f"{ours}{n}.bias"] = sd[f"{hf}{hn}.weight"], sd[f"{hf}{hn}.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = {"wte.weight": sd["embed.word.weight"], "wpe.weight": sd["embed.position.weight"],
           "ln_f.weight": sd["final_norm.weight"], "ln_f.bias": sd["final_norm.bias"]}
    for i in range(cfg.n_layers):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        out[f"{hf}attn.c_attn.weight"] = torch.cat(
            [sd[f"{ours}attn.{p}_proj.weight"] for p in "qkv"], dim=0).t()
        out[f"{hf}attn.c_attn.bias"] = torch.cat([sd[f"{ours}attn.{p}_proj.bias"] for p in "qkv"], dim=0)
        out[f"{hf}attn.c_proj.weight"] = sd[f"{ours}attn.o_proj.weight"].t()
        out[f"{hf}attn.c_proj.bias"] = sd[f"{ours}attn.o_proj.bias"]
        out[f"{hf}mlp.c_fc.weight"] = sd[f"{ours}mlp.fc_in.weight"].t()
        out[f"{hf}mlp.c_fc.bias"] = sd[f"{ours}mlp.fc_in.bias"]
        out[f"{hf}mlp.c_proj.weight"] = sd[f"{ours}mlp.fc_out.weight"].t()
        out[f"{hf}mlp.c_proj.bias"] = sd[f"{ours}mlp.fc_out.bias"]
        for n, hn in (("ln1", "ln_1"), ("ln2", "ln_2")):
            out[f"{hf}{hn}.weight"], out[f"{hf}{hn}.bias"] = sd[f"{ours}{n}.weight"], sd[f"{ours}{n}.bias"]
    return {k: v.contiguous() for k, v in out.items()}


register(Family(
    name="gpt2", model_types=("gpt2",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "transformer.",
    base_architecture=lambda cfg: "GPT2Model", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("GPT2LMHeadModel"),
           "sequence-classification": last_token_classification_head("GPT2ForSequenceClassification"),
           "token-classification": token_classification_head("GPT2ForTokenClassification"),
           "question-answering": question_answering_head("GPT2ForQuestionAnswering")},
))
