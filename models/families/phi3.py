"""Phi-3 (Abdin et al. 2024, "Phi-3 Technical Report"), Phi-3.5 and Phi-4-mini: a Llama-type decoder whose
checkpoints fuse q, k and v into one `qkv_proj` and the MLP's gate and up into one `gate_up_proj` (gate first).

No biases anywhere. `partial_rotary_factor` rotates only the first dims of each head (Phi-4-mini: 0.75), and
`sliding_window` hides keys further back on every layer. Long-context checkpoints (128k) use longrope: per-dim
short factors within `original_max_position_embeddings`, long factors past it, cos/sin scaled by
sqrt(1 + ln(max / original) / ln(original)).

Generation across that switch: Phi-3 re-runs the whole text with the long factors the first time it grows past
the original context (transformers' Phi3ForCausalLM.prepare_inputs_for_generation drops its cache there), so the
keys before it are rotated as the later ones. `generate` does the same (`Phi3TextInputs`), and a cached step that
would cross the switch with keys rotated by the short factors (a stepped or traced generation) is refused by
`Phi3Network`. transformers 4.57's own re-run is not causal (it keeps the one-position cache_position for the
whole text), so ours is checked against its plain forward, step by step without a cache.
"""
from __future__ import annotations

from typing import Any

import torch

from ..config import ModelConfig
from ..embeddings import TokenEmbeddings
from ..errors import UnsupportedArchitectureError
from ..generation import decode_text
from ..heads import causal_lm_head, last_token_classification_head, token_classification_head
from ..inputs import TextInputs
from ..rotary import rope_type
from ..transformer import TransformerModel
from .base import Family, StateDict, register, rename
from .llama import ATTENTION, COMMON_DEFAULTS, MLP, check_decoder, decoder_config, decoder_pairs, refuse, sliding_window

# config keys transformers' modeling_phi3.py, configuration_phi3.py and the rope utilities read that change the
# arithmetic: each is mapped here or by decoder_config, or refused (check_decoder, _check)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps",
    "rope_theta", "rope_scaling",        # longrope only, as Phi3Config ("su" and "yarn" are its old names for it)
    "max_position_embeddings", "original_max_position_embeddings", "partial_rotary_factor",
    "sliding_window",
    "pad_token_id",                      # the embedding's padding_idx: its gradient only; classifiers read the mask
    "tie_word_embeddings",
)
REFUSED_KEYS = ("rope_scaling", "hidden_act")
IGNORED_KEYS = ("resid_pdrop", "embd_pdrop", "attention_dropout", "initializer_range", "use_cache", "bos_token_id",
                "eos_token_id")
DEFAULTS = {**COMMON_DEFAULTS, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096,
            "original_max_position_embeddings": 4096, "partial_rotary_factor": 1.0, "sliding_window": None}
LONGROPE_KEYS = {"type", "short_factor", "long_factor"}  # all Phi3Config's validation lets through


def _check(hf: dict[str, Any]) -> dict[str, Any]:
    """Phi3Config's reading of `rope_scaling`: "su" and "yarn" mean longrope; anything else is refused (transformers
    raises on it too). Returns `hf` with the type spelled as transformers saves it."""
    scaling = hf.get("rope_scaling")
    if not scaling:
        return hf
    if set(scaling) != LONGROPE_KEYS or scaling["type"] not in ("longrope", "su", "yarn"):
        raise refuse("phi3", "rope_scaling", scaling, "Phi-3 scales rotary by longrope alone, given as type, "
                     "short_factor and long_factor")
    return {**hf, "rope_scaling": {**scaling, "type": "longrope"}}


def _config(hf: dict[str, Any]) -> ModelConfig:
    hf = _check({**DEFAULTS, **hf})
    check_decoder({**hf, "partial_rotary_factor": None}, "phi3")  # partial rotary is Phi-3's own, applied below
    n_heads = hf["num_attention_heads"]
    d_head = hf.get("head_dim") or hf["hidden_size"] // n_heads
    factor = float(hf["partial_rotary_factor"])
    return decoder_config(hf, "phi3", (False, False, False),
                          rotary_dim=int(d_head * factor) if factor != 1.0 else None, **sliding_window(hf))


def _switch(cfg: ModelConfig) -> int | None:
    """The text length after which longrope's long factors apply, or None without longrope."""
    if rope_type(cfg.rope_scaling) != "longrope":
        return None
    return int(cfg.hf_config.get("original_max_position_embeddings") or cfg.hf_config["max_position_embeddings"])


class Phi3Network(TransformerModel):
    """TransformerModel, refusing a cached step that crosses longrope's switch: the keys in the cache were rotated
    by the short factors, where Phi-3 re-runs the whole text with the long ones (see the module docstring)."""

    def forward(self, **kwargs: Any):
        cache, switch = kwargs.get("cache"), _switch(self.cfg)
        if switch is not None and cache and "k" in cache[0]:
            past = cache[0]["k"].shape[1]
            new = next(t for t in (kwargs.get("input_ids"), kwargs.get("inputs_embeds")) if t is not None).shape[1]
            if past <= switch < past + new:
                raise UnsupportedArchitectureError(
                    f"This Phi-3 model switches to its long rotary factors past {switch} tokens and then re-runs the "
                    f"whole text; a cached step from {past} to {past + new} tokens would keep keys rotated by the "
                    "short factors. Use model.generate (it re-runs the text there), or start from a longer text.")
        return super().forward(**kwargs)


class Phi3TextInputs(TextInputs):
    """Text, with Phi-3's generation: once the text grows past the longrope switch, the whole of it runs again with
    the long factors (a fresh cache), then decoding goes on from there."""

    def generate(self, model, text: str, max_new_tokens: int = 20) -> list[int]:
        ids = model.encode(text).input_ids  # (1, P)
        switch = _switch(model.config)
        if switch is None or ids.shape[1] > switch or ids.shape[1] + max_new_tokens - 1 <= switch:
            return decode_text(model, ids, max_new_tokens, capture=False)[0]
        # the steps that see at most `switch` tokens, with the short factors
        first = decode_text(model, ids, switch + 1 - ids.shape[1], capture=False)[0]
        eos = model.config.eos_token_id
        if len(first) < switch + 1 - ids.shape[1] or (eos is not None and first and first[-1] == eos):
            return first
        again = torch.cat([ids, torch.tensor([first], dtype=ids.dtype)], dim=1)  # (1, switch + 1): all re-run
        return first + decode_text(model, again, max_new_tokens - len(first), capture=False)[0]


def _build(cfg: ModelConfig) -> TransformerModel:
    return Phi3Network(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True, uses_rotary=True,
                       final_norm=True)


def _widths(cfg: ModelConfig, layer: int) -> tuple[int, int]:
    """(q rows, k or v rows) of a layer's fused qkv_proj, after any pruning (a key/value head goes with its group)."""
    heads = cfg.heads_in_layer(layer)
    return len(heads) * cfg.d_head, len({h // cfg.group_size for h in heads}) * cfg.d_head


def _unfused_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """The parameters stored as they are: embeddings, norms, o_proj and down_proj."""
    return decoder_pairs(cfg, attention={"attn.o_proj": ATTENTION["attn.o_proj"]},
                         mlp={"mlp.fc_out": MLP["mlp.fc_out"]})


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _unfused_pairs(cfg))
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        q_rows, kv_rows = _widths(cfg, i)
        # explicit sizes: a layer with every head pruned still splits into three (empty) parts
        q, k, v = sd[f"{hf}self_attn.qkv_proj.weight"].split([q_rows, kv_rows, kv_rows], dim=0)
        gate, up = sd[f"{hf}mlp.gate_up_proj.weight"].split([cfg.d_mlp, cfg.d_mlp], dim=0)  # gate first, as chunk(2)
        out.update({f"{ours}attn.q_proj.weight": q, f"{ours}attn.k_proj.weight": k, f"{ours}attn.v_proj.weight": v,
                    f"{ours}mlp.gate.weight": gate, f"{ours}mlp.fc_in.weight": up})
    return {k: v.contiguous() for k, v in out.items()}


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(ours, hf) for hf, ours in _unfused_pairs(cfg)])
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        out[f"{hf}self_attn.qkv_proj.weight"] = torch.cat([sd[f"{ours}attn.{p}_proj.weight"] for p in "qkv"], dim=0)
        out[f"{hf}mlp.gate_up_proj.weight"] = torch.cat([sd[f"{ours}mlp.gate.weight"], sd[f"{ours}mlp.fc_in.weight"]])
    return out


register(Family(
    name="phi3", model_types=("phi3",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "Phi3Model", default_task="causal-lm", inputs=Phi3TextInputs(),
    heads={"causal-lm": causal_lm_head("Phi3ForCausalLM"),
           "sequence-classification": last_token_classification_head("Phi3ForSequenceClassification"),
           "token-classification": token_classification_head("Phi3ForTokenClassification", "score")},
))
