"""GPT-2 (Radford et al. 2019): pre-norm blocks, learned positions, fused q/k/v stored as Conv1D."""
from __future__ import annotations

from typing import Any

import torch

from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import LearnedPositionEmbeddings
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..transformer import TransformerModel
from .base import Family, StateDict, register


def _config(hf: dict[str, Any]) -> ModelConfig:
    d = hf["n_embd"]
    return ModelConfig(
        family="gpt2", n_layers=hf["n_layer"], n_heads=hf["n_head"], n_kv_heads=hf["n_head"],
        d_model=d, d_head=d // hf["n_head"], d_mlp=hf.get("n_inner") or 4 * d, vocab_size=hf["vocab_size"],
        max_positions=hf["n_positions"], norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        activation=hf.get("activation_function", "gelu_new"), causal=True,
        bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"),
        pad_token_id=hf.get("pad_token_id"), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(hf),
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
