"""Falcon against transformers in its three generations: multi-head sequential (Falcon-RW, with biases),
multi-query parallel on one norm (Falcon-7B), grouped key/value heads parallel on two norms or one (Falcon-40B,
new_decoder_architecture); the sequence classifier; every config key transformers reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, falcon
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, ffn_hidden_size=37, max_position_embeddings=64)

CASES = {
    "rw-multi-head-sequential": dict(multi_query=False, parallel_attn=False, bias=True, hidden_size=40,
                                     num_attention_heads=5, rope_theta=300.0),
    "7b-multi-query": dict(multi_query=True, parallel_attn=True),
    "40b-grouped-two-norms": dict(new_decoder_architecture=True, num_kv_heads=2, tie_word_embeddings=False),
    "new-architecture-one-norm": dict(new_decoder_architecture=True, num_kv_heads=3, num_ln_in_parallel_attn=1,
                                      bias=True),
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.FalconConfig, tf.FalconForCausalLM, tmp_path / "m", **{**TINY, **CASES[case]})
    # layer 0 loses a whole key/value group where there are groups, the last layer one query head
    prune = {0: [0, 1, 2], 2: [4]} if case.startswith("40b") else {0: [0, 1], 2: [4]}
    check_decoder_family(reference, tmp_path / "m", tmp_path, prune=prune)


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.FalconConfig, tf.FalconForSequenceClassification, tmp_path / "m", new_decoder_architecture=True, num_kv_heads=2, **TINY)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to FalconConfig's defaults: ours must be the same."""
    derived = ("num_kv_heads", "ffn_hidden_size", "n_embed")  # from num_attention_heads and hidden_size
    theirs = tf.FalconConfig().to_dict()
    assert {k: theirs[k] for k in falcon.DEFAULTS if k not in derived} == {
        k: v for k, v in falcon.DEFAULTS.items() if k not in derived}
    ours = FAMILIES["falcon"].config_from_hf({"model_type": "falcon", **TINY, "ffn_hidden_size": None})
    assert ours.n_kv_heads == 1 and ours.d_mlp == 4 * 48 and ours.tie_word_embeddings  # Falcon-7B's shape
    assert FAMILIES["falcon"].config_from_hf({"model_type": "falcon", **TINY, "n_embed": 36}).d_model == 36


@pytest.mark.parametrize("key, value, extra", [
    ("alibi", True, {}),
    ("rope_scaling", {"rope_type": "dynamic", "factor": 2.0}, {}),
    ("activation", "gelu_fast", {}),
    ("parallel_attn", False, dict(new_decoder_architecture=True)),
    ("num_ln_in_parallel_attn", 2, dict(new_decoder_architecture=False, parallel_attn=True)),
    ("num_kv_heads", 2, dict(multi_query=False)),
], ids=lambda v: str(v)[:20])
def test_a_refused_value_names_its_key(key, value, extra):
    hf = {**tf.FalconConfig(**TINY).to_dict(), **extra, key: value}
    assert_refused(FAMILIES["falcon"].config_from_hf, hf, key)
