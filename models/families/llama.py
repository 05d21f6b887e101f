"""Llama-type decoders (Touvron et al. 2023): Llama (1-3.x), Mistral, Qwen2, SmolLM.

RMSNorm, rotary positions, a SwiGLU MLP and grouped-query attention: several query heads
share one key/value head. Qwen2 adds biases to q, k and v; otherwise the checkpoints agree.
Llama 3.x and long-context checkpoints scale their rotary angles (`rope_scaling`: linear,
dynamic, yarn, llama3, longrope), computed in models/rotary.py.

The helpers after the converters (`decoder_config`, `check_decoder`, `decoder_pairs`) are shared by the
families built on the same decoder: Qwen3, OLMo 2, Granite and Phi-3.
"""
from __future__ import annotations

from typing import Any

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..errors import UnsupportedArchitectureError
from ..heads import (causal_lm_head, last_token_classification_head, question_answering_head,
                     token_classification_head)
from ..rotary import check_rope_scaling, scaled_context_length
from ..transformer import TransformerModel
from .base import Family, by_model_type, layer_pairs, register, renamed_both_ways

# config keys transformers' modeling_{llama,mistral,qwen2}.py, configuration files and modeling_rope_utils.py read
# that change the arithmetic: each is mapped in decoder_config or refused in check_decoder
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "hidden_act", "rms_norm_eps", "attention_bias", "mlp_bias",
    "rope_theta", "rope_scaling",       # every type transformers defines, in models/rotary.py; others refused
    "max_position_embeddings",          # the length dynamic, yarn and longrope scale from
    "original_max_position_embeddings",  # longrope: the context its short factors cover (top level, as Phi-3)
    "partial_rotary_factor",            # read by the rope utilities; Llama rotates whole heads, so refused below 1
    "sliding_window", "use_sliding_window", "max_window_layers", "layer_types",  # Mistral, Qwen2
    "pad_token_id",                     # the embedding's padding_idx: its gradient only; classifiers read the mask
    "tie_word_embeddings",
)
REFUSED_KEYS = ("rope_scaling", "hidden_act", "partial_rotary_factor")
# read by transformers, never a change to an inference forward's numbers
IGNORED_KEYS = ("attention_dropout", "pretraining_tp", "initializer_range", "use_cache", "bos_token_id",
                "eos_token_id")

# (q/k/v bias, o bias, MLP bias) each model type's modeling code builds; None: the config's attention_bias/mlp_bias
BIASES: dict[str, tuple[bool | None, bool | None, bool | None]] = {
    "llama": (None, None, None),
    "mistral": (False, False, False),   # MistralAttention: bias=False whatever the config says
    "qwen2": (True, False, False),      # Qwen2Attention: q, k, v always biased, o never
}


# what each model type's config class assumes for a key a config.json leaves out (only those read below)
COMMON_DEFAULTS = {"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "tie_word_embeddings": False}
DEFAULTS: dict[str, dict[str, Any]] = {
    "llama": {**COMMON_DEFAULTS, "max_position_embeddings": 2048},
    "mistral": {**COMMON_DEFAULTS, "max_position_embeddings": 131072, "sliding_window": 4096},
    "qwen2": {**COMMON_DEFAULTS, "max_position_embeddings": 32768, "sliding_window": 4096,
              "use_sliding_window": False, "max_window_layers": 28},
}


def refuse(family: str, key: str, value: Any, why: str) -> UnsupportedArchitectureError:
    """The error for a config value the family does not implement, naming the key and the value."""
    return UnsupportedArchitectureError(
        f"{family} checkpoints with {key}={value!r} are not supported ({why}): the workbench would compute something "
        "else than transformers, so it refuses the checkpoint rather than ignore the key.")


def check_decoder(hf: dict[str, Any], family: str) -> None:
    """Refusals shared by the Llama-type families: a rotary scaling models/rotary.py does not compute, an
    activation the MLP lacks, a partial rotary factor the family's attention does not apply."""
    try:
        check_rope_scaling(hf.get("rope_scaling"), hf)
    except UnsupportedArchitectureError as error:
        raise refuse(family, "rope_scaling", hf.get("rope_scaling"), str(error)) from None
    if hf.get("hidden_act", "silu") not in ACTIVATIONS:
        raise refuse(family, "hidden_act", hf["hidden_act"], f"known activations: {', '.join(ACTIVATIONS)}")
    factor = hf.get("partial_rotary_factor")
    if factor is not None and float(factor) != 1.0:
        raise refuse(family, "partial_rotary_factor", factor, "its attention rotates every dim of each head")


def decoder_config(hf: dict[str, Any], family: str, biases: tuple[bool | None, bool | None, bool | None],
                   **variants: Any) -> ModelConfig:
    """The ModelConfig of a Llama-type decoder; `biases` as in BIASES, `variants` the family's switches."""
    n_heads = hf["num_attention_heads"]
    qkv_bias, out_bias, mlp_bias = (hf.get(key, False) if b is None else b
                                    for b, key in zip(biases, ("attention_bias", "attention_bias", "mlp_bias")))
    scaling = hf.get("rope_scaling")
    fields = dict(
        family=family, n_layers=hf["num_hidden_layers"], n_heads=n_heads,
        n_kv_heads=hf.get("num_key_value_heads") or n_heads, d_model=hf["hidden_size"],
        d_head=hf.get("head_dim") or hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf["vocab_size"], max_positions=scaled_context_length(hf),
        norm_eps=hf.get("rms_norm_eps", 1e-6), activation=hf.get("hidden_act", "silu"), causal=True,
        bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"), pad_token_id=hf.get("pad_token_id"),
        tie_word_embeddings=hf.get("tie_word_embeddings", False), rope_theta=hf.get("rope_theta", 10000.0),
        rope_scaling=dict(scaling) if scaling and scaling.get("rope_type", scaling.get("type")) != "default" else None,
        attention_bias=bool(qkv_bias), output_bias=bool(out_bias), mlp_bias=bool(mlp_bias),
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(hf),
    )
    fields.update(variants)
    return ModelConfig(**fields)


def sliding_window(hf: dict[str, Any]) -> dict[str, Any]:
    """Mistral and Phi-3 attend within `sliding_window` on every layer; Qwen2 and Qwen3 on the layers their
    `layer_types` name (from `max_window_layers` on) when `use_sliding_window` is set; Llama never."""
    model_type = hf.get("model_type")
    window = hf.get("sliding_window")
    qwen = model_type in ("qwen2", "qwen3")
    if qwen and not hf.get("use_sliding_window"):
        window = None
    if model_type not in ("mistral", "phi3") and not qwen or window is None:
        return {}
    n = hf["num_hidden_layers"]
    if qwen:
        first = hf.get("max_window_layers", n)
        types = hf.get("layer_types") or ["sliding_attention" if i >= first else "full_attention" for i in range(n)]
    else:
        types = ["sliding_attention"] * n
    return {"sliding_window": int(window), "layer_types": tuple(types)}


def _config(hf: dict[str, Any]) -> ModelConfig:
    model_type = hf.get("model_type", "llama")
    hf = {**DEFAULTS.get(model_type, DEFAULTS["llama"]), **hf}
    check_decoder(hf, model_type)
    return decoder_config(hf, "llama", BIASES.get(model_type, BIASES["llama"]), **sliding_window(hf))


def build_decoder(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms", norm_first=True, gated_mlp=True,
                            uses_rotary=True, final_norm=True)


# our module -> the checkpoint's, per layer
ATTENTION = {f"attn.{p}_proj": f"self_attn.{p}_proj" for p in "qkvo"}
MLP = {"mlp.gate": "mlp.gate_proj", "mlp.fc_in": "mlp.up_proj", "mlp.fc_out": "mlp.down_proj"}
PRE_NORMS = {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"}
QK_NORMS = {"attn.q_norm": "self_attn.q_norm", "attn.k_norm": "self_attn.k_norm"}


def decoder_pairs(cfg: ModelConfig, norms: dict[str, str] = PRE_NORMS, attention: dict[str, str] = ATTENTION,
                  mlp: dict[str, str] = MLP) -> list[tuple[str, str]]:
    """(HF name, ours) of every body parameter; `norms`, `attention` and `mlp` map our modules to the checkpoint's."""
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("norm.weight", "final_norm.weight")]
    norms = {**norms, **(QK_NORMS if cfg.qk_norm else {})}
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, {**attention, **mlp, **norms}, ("weight",))
        biased = {k: v for k, v in attention.items()
                  if (cfg.output_bias if k.endswith("o_proj") else cfg.attention_bias)}
        pairs += layer_pairs(hf, ours, biased, ("bias",))
        if cfg.mlp_bias:
            pairs += layer_pairs(hf, ours, mlp, ("bias",))
    return pairs


_from_hf, _to_hf = renamed_both_ways(decoder_pairs)  # the table read one way, then the other


register(Family(
    name="llama", model_types=("llama", "mistral", "qwen2"), config_from_hf=_config, build=build_decoder,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=by_model_type({"mistral": "MistralModel", "qwen2": "Qwen2Model"}, "LlamaModel"),
    default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("LlamaForCausalLM"),
           "sequence-classification": last_token_classification_head("LlamaForSequenceClassification"),
           "token-classification": token_classification_head("LlamaForTokenClassification", "score"),
           "question-answering": question_answering_head(
               "LlamaForQuestionAnswering",
               # Llama and Qwen2 keep the pre-2024 name `transformer` for this one task; Mistral uses `model`
               body_prefix=lambda cfg: "model." if cfg.hf_config.get("model_type") == "mistral" else "transformer.")},
))
