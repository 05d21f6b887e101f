"""GPT-NeoX / Pythia against transformers: parallel and sequential residuals, partial rotary (an odd rotary
count included), with and without attention biases, tied and untied unembedding; the sequence classifier;
every config key transformers reads is mapped or refused."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.families import FAMILIES, gpt_neox
from tests.models.config_keys import assert_refused
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=40, num_hidden_layers=3, num_attention_heads=5, intermediate_size=37,
            max_position_embeddings=64)

CASES = {
    "parallel": dict(use_parallel_residual=True, rotary_pct=0.25),                       # Pythia: 2 of 8 dims turn
    "sequential-no-bias": dict(use_parallel_residual=False, rotary_pct=0.5, attention_bias=False,
                               hidden_size=36, num_attention_heads=6, rotary_emb_base=500.0),  # 3 of 6: rounds up
    "full-rotary-tied": dict(rotary_pct=1.0, tie_word_embeddings=True, hidden_act="gelu_new"),
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.GPTNeoXConfig, tf.GPTNeoXForCausalLM, tmp_path / "m",
                                        **{**TINY, **CASES[case]})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_sequence_classifier_equals_transformers(tmp_path):
    check_sequence_classification(tf.GPTNeoXConfig, tf.GPTNeoXForSequenceClassification, tmp_path / "m", **TINY)


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to GPTNeoXConfig's defaults: ours must be the same."""
    theirs = tf.GPTNeoXConfig().to_dict()
    assert {k: theirs[k] for k in gpt_neox.DEFAULTS} == gpt_neox.DEFAULTS
    ours = FAMILIES["gpt_neox"].config_from_hf({"model_type": "gpt_neox", **TINY})
    assert ours.rotary_dim == 2 and ours.rope_theta == 10000 and ours.vocab_size == theirs["vocab_size"]
    assert FAMILIES["gpt_neox"].build(ours).blocks[0].parallel == "two_norms"


@pytest.mark.parametrize("key, value", [("rope_scaling", {"rope_type": "linear", "factor": 2.0}),
                                        ("hidden_act", "gelu_fast")])
def test_a_refused_value_names_its_key(key, value):
    hf = {**tf.GPTNeoXConfig(**TINY).to_dict(), key: value}
    assert_refused(FAMILIES["gpt_neox"].config_from_hf, hf, key)
