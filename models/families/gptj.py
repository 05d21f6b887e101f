"""GPT-J (Wang & Komatsuzaki 2021): one LayerNorm per block read by attention and MLP in parallel,
x + attn(ln(x)) + mlp(ln(x)), and rotary positions on the first `rotary_dim` dims of each head in the
interleaved layout (dims (0, 1), (2, 3), ... turn as pairs, not the two halves). q, k, v and the output
projection have no bias; the unembedding has one.
"""
from __future__ import annotations

from typing import Any

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head, last_token_classification_head
from ..transformer import TransformerModel
from .base import Family, layer_pairs, refuse_unsupported, register, renamed_both_ways

# every config key transformers' GPT-J reads that changes the arithmetic, with GPTJConfig's default (config.json
# leaves out the keys that equal it); each is mapped in `_config` or refused in `_check`
DEFAULTS: dict[str, Any] = {
    "vocab_size": 50400, "n_positions": 2048, "n_embd": 4096, "n_layer": 28, "n_head": 16, "rotary_dim": 64,
    "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "tie_word_embeddings": False,
    "bos_token_id": 50256, "eos_token_id": 50256, "pad_token_id": None, "pruned_heads": {},
}
# the attribute_map aliases of n_positions, n_embd, n_head and n_layer: the same values
READ_KEYS = (*DEFAULTS, "max_position_embeddings", "hidden_size", "num_attention_heads", "num_hidden_layers")
IGNORED_KEYS = ("attn_pdrop", "embd_pdrop", "resid_pdrop")  # dropout: training only
REFUSED_KEYS = ("activation_function", "rotary_dim")


def _check(hf: dict[str, Any]) -> None:
    """Refuse, by key and value, what this family does not compute."""
    d_head = hf["n_embd"] // hf["n_head"]
    # transformers' GPT-J itself cannot run an odd rotary_dim, one wider than a head, nor rotary_dim None with more
    # than one head (its angle table is then as wide as the model, not a head)
    refuse_unsupported(hf, "GPT-J", activation_function=lambda v: v in ACTIVATIONS,
                       rotary_dim=lambda v: (v is None and hf["n_head"] == 1) or (
                           v is not None and v % 2 == 0 and 0 < v <= d_head))


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    _check(hf)
    n_heads, d = hf["n_head"], hf["n_embd"]
    return ModelConfig(
        family="gptj", n_layers=hf["n_layer"], n_heads=n_heads, n_kv_heads=n_heads, d_model=d, d_head=d // n_heads,
        d_mlp=hf["n_inner"] or 4 * d, vocab_size=hf["vocab_size"], max_positions=hf["n_positions"],
        norm_eps=hf["layer_norm_epsilon"], activation=hf["activation_function"], causal=True,
        bos_token_id=hf["bos_token_id"], eos_token_id=hf["eos_token_id"], pad_token_id=hf["pad_token_id"],
        tie_word_embeddings=hf["tie_word_embeddings"],
        rope_theta=10000.0,  # fixed in transformers' create_sinusoidal_positions
        rotary_dim=hf["rotary_dim"] or d // n_heads, rotary_interleaved=True,
        attention_bias=False, output_bias=False, mlp_bias=True,
        pruned_heads=pruned_heads_from_hf(hf, "decoder"), hf_config=dict(source),
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    return TransformerModel(cfg, TokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=True, final_norm=True, parallel="shared_norm")


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("wte.weight", "embed.word.weight"), ("ln_f.weight", "final_norm.weight"), ("ln_f.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"h.{i}.", f"blocks.{i}."
        pairs += layer_pairs(hf, ours, {"ln1": "ln_1", "mlp.fc_in": "mlp.fc_in", "mlp.fc_out": "mlp.fc_out"})
        pairs += layer_pairs(hf, ours, {f"attn.{p}_proj": f"attn.{p}_proj" for p in "qkv"} | {"attn.o_proj": "attn.out_proj"},
                             ("weight",))
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)  # the table read one way, then the other


register(Family(
    name="gptj", model_types=("gptj",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "transformer.",
    base_architecture=lambda cfg: "GPTJModel", default_task="causal-lm",
    heads={"causal-lm": causal_lm_head("GPTJForCausalLM", bias=True),
           "sequence-classification": last_token_classification_head("GPTJForSequenceClassification")},
))
