"""OPT (Zhang et al. 2022): learned absolute positions counted from the attention mask and shifted by 2, a ReLU MLP,
and either pre-norm blocks with a final norm (`do_layer_norm_before`, every size but 350M) or post-norm blocks
without one (OPT-350M). OPT-350M also embeds tokens in a narrower `word_embed_proj_dim` and projects them in and
out of the residual stream (`project_in`, `project_out`): here the embedding and the final module do.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS, make_norm
from ..config import ModelConfig, pruned_heads_from_hf
from ..heads import CausalLMHead, HeadFormat, LastTokenClassificationHead
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename

POSITION_OFFSET = 2  # OPT's position table has two rows before position 0 (a fairseq legacy)


class OPTEmbeddings(nn.Module):
    """Token embedding (projected in when narrower than the model) + learned positions from the attention mask."""

    def __init__(self, cfg: ModelConfig, d_embed: int) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, d_embed)
        self.project_in = nn.Linear(d_embed, cfg.d_model, bias=False) if d_embed != cfg.d_model else None
        self.position = nn.Embedding(cfg.max_positions + POSITION_OFFSET, cfg.d_model)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, d_embed)
        if self.project_in is not None:
            x = self.project_in(x)  # (B, T, d)
        # a token's position is the number of real tokens before it, as transformers counts it; the mask covers the
        # cached past too, so the last T columns are this step's tokens
        counted = (torch.cumsum(attention_mask, dim=1) * attention_mask - 1).long()  # (B, past + T), padding -1
        return x + self.position(counted[:, -x.shape[1]:] + POSITION_OFFSET)  # (B, T, d)


class NormThenProject(nn.Module):
    """The final module of OPT-350M-type models: the final norm (if any), then `project_out` to the embedding width,
    which the unembedding reads."""

    def __init__(self, norm: nn.Module | None, d_model: int, d_embed: int) -> None:
        super().__init__()
        self.norm = norm
        self.project_out = nn.Linear(d_model, d_embed, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.project_out(self.norm(x) if self.norm is not None else x)  # (B, T, d_embed)


# every config key transformers' OPT reads that changes the arithmetic, with OPTConfig's default (config.json leaves out
# the keys that equal it); each is mapped in `_config` or refused in `_check`. word_embed_proj_dim None means
# hidden_size
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50272, "hidden_size": 768, "num_hidden_layers": 12, "ffn_dim": 3072,
    "max_position_embeddings": 2048, "do_layer_norm_before": True, "_remove_final_layer_norm": False,
    "word_embed_proj_dim": None, "num_attention_heads": 12, "activation_function": "relu", "enable_bias": True,
    "layer_norm_elementwise_affine": True, "pad_token_id": 1, "bos_token_id": 2, "eos_token_id": 2,
    "tie_word_embeddings": True, "pruned_heads": {},
}
# `n_positions` is read in a docstring only
READ_KEYS = (*DEFAULTS, "n_positions")
IGNORED_KEYS = ("dropout", "attention_dropout", "layerdrop")  # training only
REFUSED_KEYS = ("activation_function",)


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    refuse_unsupported(hf, "OPT", activation_function=lambda v: v in ACTIVATIONS)


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads, d = hf["num_attention_heads"], hf["hidden_size"]
    return ModelConfig(
        family="opt", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads, d_model=d,
        d_head=d // n_heads, d_mlp=hf["ffn_dim"], vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"], norm_eps=1e-5,  # nn.LayerNorm's default: OPT sets no eps
        activation=hf["activation_function"], causal=True, bos_token_id=hf["bos_token_id"],
        eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"], tie_word_embeddings=hf["tie_word_embeddings"],
        attention_bias=hf["enable_bias"], output_bias=hf["enable_bias"], mlp_bias=hf["enable_bias"],
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _options(cfg: ModelConfig) -> dict[str, Any]:
    return {**DEFAULTS, **cfg.hf_config}


def _d_embed(cfg: ModelConfig) -> int:
    """Width of the token embedding and of what the heads read (word_embed_proj_dim)."""
    return _options(cfg)["word_embed_proj_dim"] or cfg.d_model


def _has_final_norm(cfg: ModelConfig) -> bool:
    hf = _options(cfg)
    return hf["do_layer_norm_before"] and not hf["_remove_final_layer_norm"]


def _build(cfg: ModelConfig) -> TransformerModel:
    pre = _options(cfg)["do_layer_norm_before"]
    model = TransformerModel(cfg, OPTEmbeddings(cfg, _d_embed(cfg)), norm_kind="layer", norm_first=pre,
                             gated_mlp=False, uses_rotary=False, final_norm=_has_final_norm(cfg))
    if _d_embed(cfg) != cfg.d_model:
        model.final_norm = NormThenProject(model.final_norm, cfg.d_model, _d_embed(cfg))
    return model


def _norm_names(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) of every LayerNorm module."""
    final = "final_norm.norm" if _d_embed(cfg) != cfg.d_model else "final_norm"
    names = [("final_layer_norm", final)] if _has_final_norm(cfg) else []
    for i in range(cfg.n_layers):
        names += [(f"layers.{i}.self_attn_layer_norm", f"blocks.{i}.ln1"),
                  (f"layers.{i}.final_layer_norm", f"blocks.{i}.ln2")]
    return names


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) of every parameter the checkpoint stores: OPTModel keeps its body under `decoder.`."""
    return [(f"decoder.{hf}", ours) for hf, ours in _decoder_pairs(cfg)]


def _decoder_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("embed_positions.weight", "embed.position.weight")]
    if _d_embed(cfg) != cfg.d_model:
        pairs += [("project_in.weight", "embed.project_in.weight"), ("project_out.weight", "final_norm.project_out.weight")]
    if _options(cfg)["layer_norm_elementwise_affine"]:
        pairs += [(f"{hf}.{p}", f"{ours}.{p}") for hf, ours in _norm_names(cfg) for p in ("weight", "bias")]
    params = ("weight", "bias") if cfg.attention_bias else ("weight",)
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, {f"attn.{p}_proj": f"self_attn.{p}_proj" for p in "qkv"} | {
            "attn.o_proj": "self_attn.out_proj", "mlp.fc_in": "fc1", "mlp.fc_out": "fc2"}, params)
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _pairs(cfg))
    if not _options(cfg)["layer_norm_elementwise_affine"]:  # norms without weights: ours hold the identity
        d = cfg.d_model
        out.update({f"{ours}.{p}": torch.ones(d) if p == "weight" else torch.zeros(d)
                    for _, ours in _norm_names(cfg) for p in ("weight", "bias")})
    return out


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    return rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])


def _narrow(cfg: ModelConfig) -> ModelConfig:
    """The config the heads see: they read the (projected out) embedding width."""
    return replace(cfg, d_model=_d_embed(cfg))


register(Family(
    name="opt", model_types=("opt",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "OPTModel", default_task="causal-lm",
    heads={"causal-lm": HeadFormat("OPTForCausalLM", lambda cfg, n: CausalLMHead(_narrow(cfg)),
                                   [("lm_head.weight", "decoder.weight")], tied="decoder.weight"),
           "sequence-classification": HeadFormat(
               "OPTForSequenceClassification", lambda cfg, n: LastTokenClassificationHead(_narrow(cfg), n),
               [("score.weight", "score.weight")])},
))
