"""Gemma (Gemma Team 2024, "Gemma: Open Models Based on Gemini Research and Technology"), Gemma 2 (2024,
"Improving Open Language Models at a Practical Size") and Gemma 3 (2025, "Gemma 3 Technical Report"): the text
decoders, one family record per model type, sharing every part.

All three: token embeddings times sqrt(d_model), RMSNorm whose weight is an offset from 1 ("rms_offset"), a
gated GELU MLP, rotary attention with grouped keys and a head width of its own (`head_dim`, not d_model / heads),
and an unembedding tied to the token embedding.
Gemma 2 adds norms after each sublayer too ("sandwich"), a score scale from `query_pre_attn_scalar`,
soft-capped attention scores and logits, and sliding-window layers alternating with global ones.
Gemma 3 adds per-head query/key norms, drops the attention soft-cap, and gives local layers their own
rotary base (`rope_local_base_freq`) while its global layers scale their angles (`rope_scaling`, linear with
factor 8 in the 4B-27B models; every type transformers defines is computed in models/rotary.py).
"""
from __future__ import annotations

from typing import Any

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..errors import UnsupportedArchitectureError
from ..heads import causal_lm_head, last_token_classification_head, token_classification_head
from ..rotary import check_rope_scaling, rope_type, scaled_context_length
from ..transformer import TransformerModel
from .base import Family, layer_pairs, register, renamed_both_ways

# config keys transformers' modeling and configuration code reads, each mapped or refused below; IGNORED_KEYS
# cannot change an inference forward (tests/models/config_keys.py checks the lists against transformers' source)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "num_key_value_heads", "head_dim", "max_position_embeddings", "rms_norm_eps", "attention_bias",
    "tie_word_embeddings", "bos_token_id", "eos_token_id",
    "pad_token_id",          # the classifier's last real token: ours reads the attention mask, equal when pads pad
    "hidden_act",            # Gemma's MLP activation (transformers 4.57 reads this one for Gemma, not the next)
    "hidden_activation",     # Gemma 2 and 3's MLP activation
    "rope_theta", "partial_rotary_factor",
    "rope_scaling",          # Gemma and Gemma 2: every layer; Gemma 3: the global layers only (as transformers)
    "original_max_position_embeddings",  # longrope: the context its short factors cover
    # Gemma 2 and 3
    "query_pre_attn_scalar", "sliding_window", "layer_types", "final_logit_softcapping", "attn_logit_softcapping",
    # Gemma 3
    "rope_local_base_freq", "use_bidirectional_attention", "sliding_window_pattern",
    # read in modeling_gemma3.py by the image-text model only (model_type "gemma3", not served here)
    "text_config", "vision_config", "mm_tokens_per_image", "image_token_id", "get_text_config",
)
IGNORED_KEYS = (
    "attention_dropout",  # training only
    "_sliding_window_pattern",  # transformers' private copy of sliding_window_pattern, read as that key
    "boi_token_index", "eoi_token_index", "image_token_index",  # the image-text Gemma3Config's, not served here
)
REFUSED_KEYS = ("hidden_act", "hidden_activation", "rope_scaling", "partial_rotary_factor",
                "use_bidirectional_attention", "layer_types", "sliding_window")

# transformers' config class defaults: a key missing from config.json means these, not Llama's
_COMMON = dict(num_hidden_layers=26, num_attention_heads=8, num_key_value_heads=4, head_dim=256,
               rms_norm_eps=1e-6, pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
               attention_bias=False, rope_scaling=None, hidden_activation="gelu_pytorch_tanh")
DEFAULTS: dict[str, dict[str, Any]] = {
    "gemma": {**_COMMON, "vocab_size": 256000, "hidden_size": 3072, "intermediate_size": 24576,
              "num_hidden_layers": 28, "num_attention_heads": 16, "num_key_value_heads": 16,
              "hidden_act": "gelu_pytorch_tanh", "max_position_embeddings": 8192, "rope_theta": 10000.0},
    "gemma2": {**_COMMON, "vocab_size": 256000, "hidden_size": 2304, "intermediate_size": 9216,
               "max_position_embeddings": 8192, "rope_theta": 10000.0, "query_pre_attn_scalar": 256,
               "sliding_window": 4096, "layer_types": None, "final_logit_softcapping": 30.0,
               "attn_logit_softcapping": 50.0},
    "gemma3_text": {**_COMMON, "vocab_size": 262208, "hidden_size": 2304, "intermediate_size": 9216,
                    "max_position_embeddings": 131072, "rope_theta": 1_000_000.0, "query_pre_attn_scalar": 256,
                    "sliding_window": 4096, "layer_types": None, "final_logit_softcapping": None,
                    "attn_logit_softcapping": None, "rope_local_base_freq": 10_000.0,
                    "use_bidirectional_attention": False, "sliding_window_pattern": 6},
}
FAMILY_OF = {"gemma": "gemma", "gemma2": "gemma2", "gemma3_text": "gemma3"}
LAYER_TYPES = ("full_attention", "sliding_attention")


def _refuse(key: str, value: Any, model_type: str, why: str) -> None:
    raise UnsupportedArchitectureError(
        f"{model_type} checkpoints with {key}={value!r} are not supported: {why}. The workbench refuses this "
        "value rather than compute something else than transformers.")


def check_supported(hf: dict[str, Any]) -> None:
    """Refuse, naming the key and its value, what transformers would compute and this family does not."""
    model_type = hf["model_type"]
    activation_key = "hidden_act" if model_type == "gemma" else "hidden_activation"
    if hf[activation_key] not in ACTIVATIONS:
        _refuse(activation_key, hf[activation_key], model_type, f"the MLP knows {', '.join(sorted(ACTIVATIONS))}")
    try:
        check_rope_scaling(hf.get("rope_scaling"), hf)
    except UnsupportedArchitectureError as error:
        why = str(error).split(" is not supported: ", 1)[-1].rstrip(".")  # the reason, without the key again
        _refuse("rope_scaling", hf.get("rope_scaling"), model_type, why)
    if hf.get("partial_rotary_factor", 1.0) != 1.0:
        # transformers' Gemma rotates the whole head with tables of the smaller width, which fails
        _refuse("partial_rotary_factor", hf["partial_rotary_factor"], model_type, "Gemma rotates every head dim")
    if hf.get("use_bidirectional_attention"):
        _refuse("use_bidirectional_attention", True, model_type, "only causal attention is implemented")
    if model_type != "gemma":
        types = _layer_types(hf)
        if any(t not in LAYER_TYPES for t in types) or len(types) != hf["num_hidden_layers"]:
            _refuse("layer_types", hf.get("layer_types"), model_type,
                    f"one of {', '.join(LAYER_TYPES)} per layer ({hf['num_hidden_layers']}) is implemented")
        if "sliding_attention" in types and not hf.get("sliding_window"):
            _refuse("sliding_window", hf.get("sliding_window"), model_type, "sliding layers need a window")


def _layer_types(hf: dict[str, Any]) -> tuple[str, ...]:
    """Each layer's attention, as transformers' config fills it in when config.json has no `layer_types`:
    every `sliding_window_pattern`-th layer global (Gemma 2: every second; Gemma 3: every sixth by default)."""
    if hf.get("layer_types"):
        return tuple(hf["layer_types"])
    every = 2 if hf["model_type"] == "gemma2" else hf.get("sliding_window_pattern") or 6
    return tuple("sliding_attention" if (i + 1) % every else "full_attention" for i in range(hf["num_hidden_layers"]))


def _config(source: dict[str, Any]) -> ModelConfig:
    model_type = source.get("model_type", "gemma")
    hf = {**DEFAULTS[model_type], **source, "model_type": model_type}  # explicit nulls stay None, as in transformers
    check_supported(hf)
    first = model_type == "gemma"  # Gemma 2 and 3 share what Gemma lacks
    variants: dict[str, Any] = {}
    if not first:
        types = _layer_types(hf)
        variants.update(attention_scale=hf["query_pre_attn_scalar"] ** -0.5, layer_types=types,
                        sliding_window=int(hf["sliding_window"]) if "sliding_attention" in types else None,
                        final_softcap=hf["final_logit_softcapping"])
    if model_type == "gemma2":
        # Gemma 3 keeps the key in its config but transformers' Gemma 3 attention never applies it: nor do we
        variants["attn_softcap"] = hf["attn_logit_softcapping"]
    if model_type == "gemma3_text":
        variants.update(qk_norm=True, rope_theta_local=float(hf["rope_local_base_freq"]))
    bias = bool(hf["attention_bias"])  # on q, k, v and the output projection alike
    scaling = hf.get("rope_scaling")
    return ModelConfig(
        family=FAMILY_OF[model_type], n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        n_kv_heads=hf["num_key_value_heads"], d_model=hf["hidden_size"],
        d_head=hf["head_dim"] or hf["hidden_size"] // hf["num_attention_heads"],
        d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"], max_positions=scaled_context_length(hf),
        norm_eps=hf["rms_norm_eps"], activation=hf["hidden_act" if first else "hidden_activation"], causal=True,
        bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=bool(hf["tie_word_embeddings"]), rope_theta=float(hf["rope_theta"]),
        # models/rotary.py leaves layers with a base of their own (Gemma 3's local ones) unscaled, as transformers
        rope_scaling=dict(scaling) if rope_type(scaling) != "default" else None,
        attention_bias=bias, output_bias=bias, mlp_bias=False,
        # transformers multiplies by sqrt(d) cast to the hidden dtype: in float32, the dtype the workbench runs in,
        # that is exactly what multiplying by the Python float does
        embed_scale=hf["hidden_size"] ** 0.5,
        pruned_heads=pruned_heads_from_hf(source, "decoder"), hf_config=dict(source), **variants,
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    # Gemma: pre-norm; Gemma 2 and 3: each sublayer's output normed again before it joins the residual stream
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="rms_offset", norm_first=True, gated_mlp=True,
                            uses_rotary=True, final_norm=True, norms="pre" if cfg.family == "gemma" else "sandwich")


# our module -> Hugging Face module, per layer
_PROJECTIONS = {f"attn.{p}_proj": f"self_attn.{p}_proj" for p in "qkvo"}
_MLP = {"mlp.gate": "mlp.gate_proj", "mlp.fc_in": "mlp.up_proj", "mlp.fc_out": "mlp.down_proj"}
# Gemma's `post_attention_layernorm` is the MLP's input norm; Gemma 2 and 3 give that name to the norm after
# attention and call the MLP's input norm `pre_feedforward_layernorm`
_NORMS = {"gemma": {"ln1": "input_layernorm", "ln2": "post_attention_layernorm"},
          "sandwich": {"ln1": "input_layernorm", "ln1_post": "post_attention_layernorm",
                       "ln2": "pre_feedforward_layernorm", "ln2_post": "post_feedforward_layernorm"}}
_QK_NORMS = {"attn.q_norm": "self_attn.q_norm", "attn.k_norm": "self_attn.k_norm"}


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embed_tokens.weight", "embed.word.weight"), ("norm.weight", "final_norm.weight")]
    weights = {**_PROJECTIONS, **_MLP, **_NORMS["gemma" if cfg.family == "gemma" else "sandwich"],
               **(_QK_NORMS if cfg.qk_norm else {})}
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, weights, ("weight",))
        if cfg.attention_bias:
            pairs += layer_pairs(hf, ours, _PROJECTIONS, ("bias",))
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


def _register(name: str, model_type: str, prefix: str, body: str, classifier: str, tagger: bool) -> Family:
    heads = {"causal-lm": causal_lm_head(f"{prefix}ForCausalLM"),
             "sequence-classification": last_token_classification_head(classifier)}
    if tagger:  # transformers has no Gemma 3 token classifier
        heads["token-classification"] = token_classification_head(f"{prefix}ForTokenClassification", "score")
    return register(Family(
        name=name, model_types=(model_type,), config_from_hf=_config, build=_build, state_dict_from_hf=_from_hf,
        state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.", base_architecture=lambda cfg: body,
        default_task="causal-lm", heads=heads))


_register("gemma", "gemma", "Gemma", "GemmaModel", "GemmaForSequenceClassification", tagger=True)
_register("gemma2", "gemma2", "Gemma2", "Gemma2Model", "Gemma2ForSequenceClassification", tagger=True)
# the text-only Gemma 3 (1B, and the text towers of the larger ones); model_type "gemma3" is the image-text model
_register("gemma3", "gemma3_text", "Gemma3", "Gemma3TextModel", "Gemma3TextForSequenceClassification", tagger=False)
