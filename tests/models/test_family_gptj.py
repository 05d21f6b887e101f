"""GPT-J against transformers: interleaved partial and full rotary, one shared norm for attention and MLP,
no q/k/v/o biases, a biased unembedding (tied or not); the sequence classifier; every config key transformers
reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, gptj
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(n_embd=40, n_layer=3, n_head=5, n_inner=37, rotary_dim=4, n_positions=64)  # 4 of 8 dims turn

CASES = {
    "partial-rotary": {},
    "full-rotary-tied": dict(n_embd=36, n_head=6, rotary_dim=6, tie_word_embeddings=True, activation_function="gelu"),
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.GPTJConfig, tf.GPTJForCausalLM, tmp_path / "m", **{**TINY, **CASES[case]})
    assert reference.lm_head.bias is not None
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.GPTJConfig, tf.GPTJForSequenceClassification, tmp_path / "m", **TINY)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to GPTJConfig's defaults: ours must be the same."""
    theirs = tf.GPTJConfig().to_dict()
    assert {k: theirs[k] for k in gptj.DEFAULTS} == gptj.DEFAULTS
    ours = FAMILIES["gptj"].config_from_hf({"model_type": "gptj", "n_embd": 64, "n_head": 1, "n_layer": 1})
    assert ours.rotary_dim == 64 and ours.d_mlp == 256 and ours.activation == "gelu_new"


@pytest.mark.parametrize("key, value", [("activation_function", "gelu_fast"), ("rotary_dim", 3),
                                        ("rotary_dim", None), ("rotary_dim", 16)])
def test_a_refused_value_names_its_key(key, value):
    hf = {**tf.GPTJConfig(**TINY).to_dict(), key: value}
    assert_refused(FAMILIES["gptj"].config_from_hf, hf, key)
