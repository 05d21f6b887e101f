"""Phi against transformers: parallel attention and MLP on one norm, partial rotary, grouped key/value heads, per-head q/k LayerNorms shared across heads, a biased unembedding; the
sequence classifier; every config key transformers reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, phi
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=48, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, intermediate_size=37,
            max_position_embeddings=64)  # d_head 8: 4 dims turn

CASES = {
    "grouped-kv": {},
    "qk-layernorm": dict(qk_layernorm=True, partial_rotary_factor=0.75, num_key_value_heads=6, rope_theta=300.0,
                         tie_word_embeddings=True),  # 6 of 8 dims turn
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.PhiConfig, tf.PhiForCausalLM, tmp_path / "m", **{**TINY, **CASES[case]})
    check_decoder_family(reference, tmp_path / "m", tmp_path, prune={0: [0, 1], 2: [3, 4, 5]})


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.PhiConfig, tf.PhiForSequenceClassification, tmp_path / "m", **TINY)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to PhiConfig's defaults: ours must be the same."""
    theirs = tf.PhiConfig(num_attention_heads=6, hidden_size=48)
    derived = ("num_key_value_heads", "head_dim")  # from num_attention_heads and hidden_size
    defaults = {k: v for k, v in tf.PhiConfig().to_dict().items() if k in phi.DEFAULTS and k not in derived}
    assert defaults == {k: v for k, v in phi.DEFAULTS.items() if k not in derived}
    ours = FAMILIES["phi"].config_from_hf({"model_type": "phi", "num_attention_heads": 6, "hidden_size": 48})
    assert ours.n_kv_heads == theirs.num_key_value_heads == 6 and ours.rotary_dim == 4


@pytest.mark.parametrize("key, value", [("hidden_act", "gelu_fast"), ("rope_scaling", {"type": "dynamic", "factor": 2.0}),
                                        ("head_dim", 16), ("partial_rotary_factor", 0.4)])  # 3 of 8 dims
def test_a_refused_value_names_its_key(key, value):
    hf = {**tf.PhiConfig(**TINY, qk_layernorm=True).to_dict(), key: value}
    assert_refused(FAMILIES["phi"].config_from_hf, hf, key)
