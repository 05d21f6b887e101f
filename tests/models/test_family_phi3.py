"""Phi-3: fused qkv_proj and gate_up_proj, partial rotary, sliding window, longrope (also across its switch)."""
from __future__ import annotations

import re

import pytest
import torch
import transformers as tf

from models import load_model
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES, phi3
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import TEXT, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, intermediate_size=39,
            max_position_embeddings=64, original_max_position_embeddings=64, rope_theta=100.0)


def longrope(n: int, kind: str = "longrope") -> dict:
    return {"type": kind, "short_factor": [1.0 + 0.4 * i for i in range(n)],
            "long_factor": [2.0 + 3 * i for i in range(n)]}


VARIANTS = {
    "plain": {},
    # rotary on 4 of each head's 8 dims; keys more than 3 positions back hidden
    "partial-rotary-sliding-window": dict(partial_rotary_factor=0.5, sliding_window=3),
    # the text (10 tokens) is past the original context from the start: long factors throughout
    "longrope": dict(max_position_embeddings=32, original_max_position_embeddings=8, rope_scaling=longrope(4)),
    # Phi-4-mini's form: partial rotary (6 of 8 dims) with longrope, written with the old type name "su"
    "longrope-partial-su": dict(partial_rotary_factor=0.75, max_position_embeddings=32,
                                original_max_position_embeddings=8, rope_scaling=longrope(3, "su")),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_phi3_equals_transformers(tmp_path, name):
    reference = make_decoder_checkpoint(tf.Phi3Config, tf.Phi3ForCausalLM, tmp_path / "m", **{**TINY, **VARIANTS[name]})
    model = load_model(str(tmp_path / "m"))
    assert model.config.rotary_dim == {"partial-rotary-sliding-window": 4, "longrope-partial-su": 6}.get(name)
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_generation_across_the_longrope_switch_reruns_the_text(tmp_path):
    """Original context 16: the text grows past it while generating. Phi-3 re-runs everything with the long
    factors there, so 20 greedy tokens equal transformers' forward run on the whole text at every step."""
    reference = make_decoder_checkpoint(tf.Phi3Config, tf.Phi3ForCausalLM, tmp_path / "m", **{
        **TINY, "max_position_embeddings": 48, "original_max_position_embeddings": 16, "rope_scaling": longrope(4)})
    model = load_model(str(tmp_path / "m"))
    model.config.eos_token_id = None
    ids = model.encode(TEXT).input_ids
    theirs = []
    with torch.no_grad():
        for _ in range(20):
            theirs.append(int(reference(ids).logits[0, -1].argmax()))
            ids = torch.cat([ids, torch.tensor([[theirs[-1]]])], dim=1)
    assert model.generate(TEXT, max_new_tokens=20) == theirs
    with pytest.raises(UnsupportedArchitectureError, match="long rotary factors past 16 tokens"):
        model.generate_traced(TEXT, max_new_tokens=20)  # steps with the cache would keep short-factor keys
    assert len(model.generate_traced(TEXT, max_new_tokens=5)[0]) == 5  # within the original context: fine


def test_fused_projections_are_split_and_fused_back(tmp_path):
    make_decoder_checkpoint(tf.Phi3Config, tf.Phi3ForCausalLM, tmp_path / "m", **TINY)
    model = load_model(str(tmp_path / "m"))
    attn, mlp = model.network.blocks[0].attn, model.network.blocks[0].mlp
    assert (attn.q_proj.out_features, attn.k_proj.out_features, mlp.gate.out_features) == (32, 16, 39)
    pruned = model.prune_heads({0: [0, 1]})  # a whole key/value group: the fused rows shrink to 16 + 8 + 8
    saved = pruned.save_pretrained(tmp_path / "pruned")
    from safetensors.torch import load_file
    assert load_file(str(saved / "model.safetensors"))["model.layers.0.self_attn.qkv_proj.weight"].shape == (32, 32)
    again = load_model(str(saved)).run(TEXT)
    assert all(torch.equal(a, b) for a, b in zip(again.hidden_states, pruned.run(TEXT).hidden_states))


def test_sequence_classification(tmp_path):
    check_sequence_classification(tf.Phi3Config, tf.Phi3ForSequenceClassification, tmp_path / "c",
                                  **{**TINY, "partial_rotary_factor": 0.5})


REFUSED = [
    ("rope_scaling", {"type": "linear", "factor": 2.0}),
    ("rope_scaling", {**longrope(4), "factor": 2.0}),  # a fourth field: Phi3Config raises on it
    ("hidden_act", "gelu_fast"),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:30])
def test_a_refused_value_names_its_key(key, value):
    hf = tf.Phi3Config(vocab_size=64, **TINY).to_dict()
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES["phi3"].config_from_hf(hf)
    assert key in phi3.REFUSED_KEYS and key in phi3.READ_KEYS


@pytest.mark.parametrize("old_name", ["su", "yarn"])
def test_old_names_of_longrope_read_as_longrope(old_name):
    """Phi3Config reads "su" and "yarn" as longrope (and saves "longrope"); a raw config.json may still say them."""
    hf = tf.Phi3Config(vocab_size=64, **{**TINY, **VARIANTS["longrope"]}).to_dict()
    hf["rope_scaling"] = longrope(4, old_name)
    cfg = FAMILIES["phi3"].config_from_hf(hf)
    assert cfg.rope_scaling["type"] == "longrope" and cfg.hf_config["rope_scaling"]["type"] == "longrope"
