"""StableLM (Stability AI 2023-24: StableLM-3B-4E1T, StableLM 2): LayerNorm blocks, a SwiGLU MLP without biases,
rotary positions on the first `partial_rotary_factor` of each head, grouped key/value heads, q/k/v biases with
`use_qkv_bias`, and the parallel residual x + attn(ln(x)) + mlp(ln(x)) with `use_parallel_residual`.

StableLM 2 12B's `qk_layernorm` gives every query head and every key/value head its own LayerNorm (own weights, no
bias). The shared attention's q/k norm is one norm for all heads, so this file brings the per-head version
(`PerHeadLayerNorm`) and an attention that keeps the right heads' norms when heads are pruned.
"""
from __future__ import annotations

import copy
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attention import Attention
from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head, last_token_classification_head
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename


class PerHeadLayerNorm(nn.Module):
    """A LayerNorm without bias over each head's d_head dims, with a weight of its own per head (StableLM's
    StableLmLayerNormPerHead, whose `norms.{h}.weight` are the rows of `weight` here)."""

    def __init__(self, n_heads: int, d_head: int, eps: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(n_heads, d_head))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, H, dh) queries or keys, normalised per head."""
        return F.layer_norm(x, x.shape[-1:], eps=self.eps) * self.weight  # (B, T, H, dh)

    @torch.no_grad()
    def select(self, heads: list[int]) -> "PerHeadLayerNorm":
        """The norms of the given local heads only (pruning)."""
        new = PerHeadLayerNorm(len(heads), self.weight.shape[1], self.eps).to(self.weight.dtype)
        new.weight.copy_(self.weight[heads])
        return new


class PerHeadNormAttention(Attention):
    """The shared attention with `PerHeadLayerNorm` query and key norms; pruning keeps the kept heads' norms."""

    @classmethod
    def from_attention(cls, attn: Attention, eps: float) -> "PerHeadNormAttention":
        """`attn` (freshly built, before its weights load) turned into this class, with per-head norms."""
        attn.__class__ = cls  # same module, same parameters; only pruning differs
        attn.q_norm = PerHeadLayerNorm(attn.n_heads, attn.d_head, eps)
        attn.k_norm = PerHeadLayerNorm(attn.n_kv_heads, attn.d_head, eps)
        return attn

    @torch.no_grad()
    def without_heads(self, local_heads: list[int]) -> "PerHeadNormAttention":
        keep = [h for h in range(self.n_heads) if h not in set(local_heads)]
        kv_kept = sorted({int(self.kv_index[h]) for h in keep})
        # the shared attention prunes the projections of a view without the norms (its own module table, so this
        # module, maybe a shared cached model's, is never touched), then the kept heads' norms go on the copy
        view = copy.copy(self)
        view._modules = {**self._modules, "q_norm": None, "k_norm": None}
        new = Attention.without_heads(view, local_heads)
        new.__class__ = PerHeadNormAttention
        new.q_norm, new.k_norm = self.q_norm.select(keep), self.k_norm.select(kv_kept)
        return new


# every config key transformers' StableLM reads that changes the arithmetic, with StableLmConfig's default
# (config.json leaves out the keys that equal it); each is mapped in `_config` or refused in `_check`
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50304, "intermediate_size": 6912, "hidden_size": 2560, "num_hidden_layers": 32,
    "num_attention_heads": 32, "num_key_value_heads": 32, "hidden_act": "silu", "max_position_embeddings": 4096,
    "layer_norm_eps": 1e-5, "tie_word_embeddings": False, "rope_theta": 10000, "rope_scaling": None,
    "use_qkv_bias": False, "qk_layernorm": False, "use_parallel_residual": False, "partial_rotary_factor": 0.25,
    "bos_token_id": 0, "eos_token_id": 0, "pad_token_id": None, "pruned_heads": {},
}
# `n_positions` and `attn_implementation` are read in a docstring and a warning only
READ_KEYS = (*DEFAULTS, "n_positions", "attn_implementation")
IGNORED_KEYS = ("attention_dropout", "hidden_dropout",  # dropout: training only
                "original_max_position_embeddings")  # original_max_position_embeddings: read by scaled rotary types only, and rope_scaling is refused
REFUSED_KEYS = ("rope_scaling", "hidden_act", "partial_rotary_factor", "head_dim")
READ_KEYS = READ_KEYS + ("head_dim",)  # transformers' rotary table reads head_dim when a config.json carries it


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    d_head = hf["hidden_size"] // hf["num_attention_heads"]
    refuse_unsupported(hf, "StableLM", hidden_act=lambda v: v in ACTIVATIONS,
                       rope_scaling=lambda v: not v or v.get("rope_type", v.get("type")) in (None, "default"),
                       # it slices int(d_head * factor) dims but its angle table is even: odd widths cannot run there
                       partial_rotary_factor=lambda v: int(d_head * v) % 2 == 0,
                       head_dim=lambda v: v in (None, d_head))


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads, d = hf["num_attention_heads"], hf["hidden_size"]
    return ModelConfig(
        family="stablelm", n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf["num_key_value_heads"] or n_heads, d_model=d, d_head=d // n_heads,
        d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
        norm_eps=hf["layer_norm_eps"], activation=hf["hidden_act"], causal=True,
        bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"], rope_theta=float(hf["rope_theta"]),
        rotary_dim=int(d // n_heads * hf["partial_rotary_factor"]),
        attention_bias=bool(hf["use_qkv_bias"]), output_bias=False, mlp_bias=False,
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _options(cfg: ModelConfig) -> dict[str, Any]:
    return {**DEFAULTS, **cfg.hf_config}


def _build(cfg: ModelConfig) -> TransformerModel:
    hf = _options(cfg)
    model = TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=True,
                             uses_rotary=True, final_norm=True,
                             parallel="shared_norm" if hf["use_parallel_residual"] else None)
    if hf["qk_layernorm"]:
        for block in model.blocks:
            block.attn = PerHeadNormAttention.from_attention(block.attn, cfg.norm_eps)
    return model


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) for everything but the per-head q/k norms."""
    parallel = _options(cfg)["use_parallel_residual"]
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("norm.weight", "final_norm.weight"),
             ("norm.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, {"ln1": "input_layernorm"} | ({} if parallel else {"ln2": "post_attention_layernorm"}))
        pairs += layer_pairs(hf, ours, {"attn.o_proj": "self_attn.o_proj", "mlp.gate": "mlp.gate_proj",
                                        "mlp.fc_in": "mlp.up_proj", "mlp.fc_out": "mlp.down_proj"}, ("weight",))
        pairs += layer_pairs(hf, ours, {f"attn.{p}_proj": f"self_attn.{p}_proj" for p in "qkv"},
                             ("weight", "bias") if cfg.attention_bias else ("weight",))
    return pairs


def _norm_rows(cfg: ModelConfig) -> list[tuple[str, str, int]]:
    """(HF prefix of the per-head norms, our weight name, heads) of every q/k norm, when qk_layernorm is on."""
    if not _options(cfg)["qk_layernorm"]:
        return []
    rows = []
    for i in range(cfg.n_layers):
        n_heads = len(cfg.heads_in_layer(i))
        n_kv = len({h // cfg.group_size for h in cfg.heads_in_layer(i)})
        rows += [(f"layers.{i}.self_attn.q_layernorm.norms", f"blocks.{i}.attn.q_norm.weight", n_heads),
                 (f"layers.{i}.self_attn.k_layernorm.norms", f"blocks.{i}.attn.k_norm.weight", n_kv)]
    return rows


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _pairs(cfg))
    for hf, ours, n in _norm_rows(cfg):
        out[ours] = torch.stack([sd[f"{hf}.{h}.weight"] for h in range(n)])  # (H, dh)
    return out


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(ours, hf) for hf, ours in _pairs(cfg)])
    for hf, ours, n in _norm_rows(cfg):
        out.update({f"{hf}.{h}.weight": sd[ours][h].clone() for h in range(n)})
    return out


register(Family(
    name="stablelm", model_types=("stablelm",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "StableLmModel", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("StableLmForCausalLM"),
           "sequence-classification": last_token_classification_head("StableLmForSequenceClassification")},
))
