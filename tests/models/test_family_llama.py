"""Llama with every `rope_scaling` type transformers defines for it: linear, dynamic, yarn, llama3, longrope.

Llama 3.x checkpoints used to be refused for their `rope_scaling`. The tiny configs keep
`max_position_embeddings` (or the original context) below the text, so every case runs in the scaled regime,
and those whose table depends on the length (dynamic, longrope) cross into it during generation too: the
key/value cache keeps the keys of earlier steps as they were rotated, on both sides.
"""
from __future__ import annotations

import re

import pytest
import torch
import transformers as tf
from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

from models import load_model
from models.config import ModelConfig
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES, llama
from models.rotary import rotary_tables, scaled_context_length
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import (TEXT, assert_same_trace, check_decoder_family, make_decoder_checkpoint,
                                         reference_outputs)

# d_head 8 (4 angular speeds); a small base so even the slowest dims turn within 30 positions
TINY = dict(hidden_size=48, num_hidden_layers=2, num_attention_heads=6, num_key_value_heads=2, intermediate_size=45,
            rope_theta=100.0)
SHORT, LONG = [1.0, 1.3, 2.1, 3.7], [1.5, 2.9, 6.2, 11.0]

# name -> (config overrides); TEXT is 10 tokens and generation runs to 30
SCALED = {
    "linear": dict(max_position_embeddings=8, rope_scaling={"rope_type": "linear", "factor": 4.0}),
    "linear-legacy-type-key": dict(max_position_embeddings=8, rope_scaling={"type": "linear", "factor": 4.0}),
    "dynamic": dict(max_position_embeddings=8, rope_scaling={"rope_type": "dynamic", "factor": 4.0}),
    "yarn": dict(max_position_embeddings=32,
                 rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}),
    "yarn-mscale-betas": dict(max_position_embeddings=8, rope_scaling={
        "rope_type": "yarn", "factor": 4.0, "mscale": 0.7, "mscale_all_dim": 0.4, "beta_fast": 8.0, "beta_slow": 0.5,
        "truncate": False}),
    "yarn-attention-factor": dict(max_position_embeddings=10, rope_scaling={
        "rope_type": "yarn", "factor": 3.0, "attention_factor": 1.3}),
    # original context 32: speed 0 kept (wavelength 6.3 < 32 / 4), 1 blended (19.9), 2 and 3 divided (> 32 / 1)
    "llama3": dict(max_position_embeddings=64, rope_scaling={
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 32}),
    "longrope": dict(max_position_embeddings=8, rope_scaling={
        "rope_type": "longrope", "factor": 4.0, "short_factor": SHORT, "long_factor": LONG}),
}
# the text crosses the switch while it is generated: the first steps use the original table, later ones the scaled
CROSSING = {
    "dynamic-crossing": dict(max_position_embeddings=16, rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
    "longrope-crossing": dict(max_position_embeddings=16, rope_scaling={
        "rope_type": "longrope", "factor": 2.0, "short_factor": SHORT, "long_factor": LONG}),
    # Phi-3's form: the original context at the top level, factor = max_position_embeddings / it
    "longrope-original-context": dict(max_position_embeddings=32, original_max_position_embeddings=12, rope_scaling={
        "rope_type": "longrope", "short_factor": SHORT, "long_factor": LONG}),
}


def _hf(**overrides) -> dict:
    return tf.LlamaConfig(vocab_size=64, **{**TINY, **overrides}).to_dict()


@pytest.mark.parametrize("name", list(SCALED) + list(CROSSING))
def test_rotary_tables_equal_transformers_at_every_length(name):
    """cos and sin at lengths 1 to 40 equal a fresh transformers LlamaRotaryEmbedding's (attention factor
    included), and differ from plain rotary past the original context: the cases run in the scaled regime."""
    overrides = {**SCALED, **CROSSING}[name]
    hf = _hf(**overrides)
    cfg = FAMILIES["llama"].config_from_hf(hf)
    plain = ModelConfig(**{**cfg.__dict__, "rope_scaling": None})
    x = torch.zeros(1, 1, 8)
    differs = False
    for length in range(1, 41):
        positions = torch.arange(length)[None]
        theirs = LlamaRotaryEmbedding(tf.LlamaConfig(**hf))(x, positions)  # fresh: no state from other lengths
        ours = rotary_tables(cfg, positions, torch.float32)["full_attention"]
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a[:, :, 0], b, atol=1e-6, rtol=0)
        base = rotary_tables(plain, positions, torch.float32)["full_attention"]
        differs |= (ours[0] - base[0]).abs().max().item() > 1e-2
    assert differs


@pytest.mark.parametrize("name", ["linear", "dynamic", "yarn", "llama3", "longrope"])
def test_scaled_llama_equals_transformers(tmp_path, name):
    """The shared decoder checks: single and padded traces, 20 greedy tokens with the cache, pruned = masked,
    save and reload, transformers loads ours."""
    reference = make_decoder_checkpoint(tf.LlamaConfig, tf.LlamaForCausalLM, tmp_path / "m", **TINY, **SCALED[name])
    check_decoder_family(reference, tmp_path / "m", tmp_path)


@pytest.mark.parametrize("name", ["yarn-mscale-betas", "yarn-attention-factor"] + list(CROSSING))
def test_scaled_traces_and_cached_generation_equal_transformers(tmp_path, name):
    """The other variants: a padded batch, and 20 greedy tokens with the key/value cache on both sides (the
    crossing cases switch tables mid-generation; transformers' cache keeps earlier keys as rotated, as ours)."""
    overrides = {**SCALED, **CROSSING}[name]
    reference = make_decoder_checkpoint(tf.LlamaConfig, tf.LlamaForCausalLM, tmp_path / "m", **TINY, **overrides)
    model = load_model(str(tmp_path / "m"))
    batch = model.run(["a dog barked loudly and then ran away quickly .", "the cat sat ."])
    assert_same_trace(batch, reference_outputs(reference, batch.input_ids, batch.attention_mask), batch.attention_mask)
    ids = model.encode(TEXT).input_ids
    with torch.no_grad():
        theirs = reference.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=20, do_sample=False,
                                    eos_token_id=None, pad_token_id=0)[0, ids.shape[1]:].tolist()
    model.config.eos_token_id = None
    assert model.generate(TEXT, max_new_tokens=20) == theirs


def test_qwen2_with_yarn_and_a_sliding_window(tmp_path):
    """Qwen2.5's long-context form: yarn on every layer, the window from max_window_layers on."""
    reference = make_decoder_checkpoint(
        tf.Qwen2Config, tf.Qwen2ForCausalLM, tmp_path / "m", **TINY, max_position_embeddings=32,
        use_sliding_window=True, sliding_window=4, max_window_layers=1,
        rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_the_context_length_is_the_scaled_one():
    """A scaled config reads (and generates) past max_position_embeddings where that is the unscaled context."""
    assert scaled_context_length(_hf(**SCALED["dynamic"])) == 32
    assert scaled_context_length(_hf(**SCALED["yarn"])) == 32  # max_position_embeddings is already the scaled one
    assert scaled_context_length(_hf(**SCALED["yarn-mscale-betas"])) == 32
    assert scaled_context_length(_hf(**SCALED["llama3"])) == 64
    assert scaled_context_length(_hf(**CROSSING["longrope-original-context"])) == 32
    assert FAMILIES["llama"].config_from_hf(_hf(**SCALED["linear"])).max_positions == 32


def test_sequence_classification_with_llama3_scaling(tmp_path):
    check_sequence_classification(tf.LlamaConfig, tf.LlamaForSequenceClassification, tmp_path / "c",
                                  **TINY, **SCALED["llama3"])


REFUSED = [
    ("rope_scaling", {"rope_type": "su-unknown", "factor": 2.0}),
    ("rope_scaling", {"factor": 2.0}),                                   # no type at all
    ("rope_scaling", {"rope_type": "llama3", "factor": 8.0, "original_max_position_embeddings": 8}),  # no freq factors
    ("rope_scaling", {"rope_type": "longrope", "short_factor": SHORT, "long_factor": LONG}),  # no factor to scale by
    ("hidden_act", "gelu_fast"),
    ("partial_rotary_factor", 0.5),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:30])
def test_a_refused_value_names_its_key(key, value):
    hf = _hf(max_position_embeddings=8)
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES["llama"].config_from_hf(hf)
    assert key in llama.REFUSED_KEYS and key in llama.READ_KEYS


def test_plain_rotary_under_a_default_rope_type():
    assert FAMILIES["llama"].config_from_hf(_hf(rope_scaling={"rope_type": "default"})).rope_scaling is None

