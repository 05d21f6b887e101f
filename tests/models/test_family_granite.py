"""Granite: embedding, residual and attention multipliers, and logits divided by logits_scaling."""
from __future__ import annotations

import json
import re

import pytest
import transformers as tf

from models import load_model
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES, granite
from tests.models.decoder_classifier import check_score_head_on_bare_model
from tests.models.decoder_parity import TEXT, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=30, num_hidden_layers=2, num_attention_heads=5, num_key_value_heads=5, intermediate_size=41,
            max_position_embeddings=64)
# Granite 3's values are 12, 0.22, 0.0078 and 8; these are far from 1 so a multiplier left out shows
MULTIPLIERS = dict(embedding_multiplier=3.0, residual_multiplier=0.4, attention_multiplier=0.09, logits_scaling=2.5)
VARIANTS = {
    "multipliers": MULTIPLIERS,
    "multi-query-biased-tied": dict(MULTIPLIERS, num_key_value_heads=1, attention_bias=True, mlp_bias=True,
                                tie_word_embeddings=True),
    "llama3-scaling": dict(MULTIPLIERS, rope_scaling={
        "rope_type": "llama3", "factor": 4.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16}),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_granite_equals_transformers(tmp_path, name):
    reference = make_decoder_checkpoint(tf.GraniteConfig, tf.GraniteForCausalLM, tmp_path / "m",
                                        **{**TINY, **VARIANTS[name]})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


@pytest.mark.parametrize("key", sorted(MULTIPLIERS))
def test_each_multiplier_changes_the_logits(tmp_path, key):
    """A key the family ignored would leave the numbers as they are: each one moves them."""
    make_decoder_checkpoint(tf.GraniteConfig, tf.GraniteForCausalLM, tmp_path / "m", **TINY, **MULTIPLIERS)
    cfg = FAMILIES["granite"].config_from_hf({**tf.GraniteConfig(vocab_size=64, **TINY, **MULTIPLIERS).to_dict(),
                                              key: 1.0})
    mapped = {"embedding_multiplier": cfg.embed_scale, "residual_multiplier": cfg.residual_scale,
              "attention_multiplier": cfg.attention_scale, "logits_scaling": cfg.logits_scale}
    assert mapped[key] == 1.0 and all(v != 1.0 for k, v in mapped.items() if k != key)
    model = load_model(str(tmp_path / "m"))
    path = tmp_path / "m" / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), key: 1.0}))
    assert (load_model(str(tmp_path / "m")).run(TEXT).logits - model.run(TEXT).logits).abs().max() > 1e-2


def test_sequence_classification_on_the_bare_model(tmp_path):
    check_score_head_on_bare_model(tf.GraniteConfig, tf.GraniteModel, tmp_path / "c",
                                   "GraniteForSequenceClassification", **TINY, **MULTIPLIERS)


REFUSED = [
    ("rope_scaling", {"rope_type": "longrope", "short_factor": [1.0, 1.0, 1.0]}),  # no long_factor
    ("hidden_act", "gelu_fast"),
    ("partial_rotary_factor", 0.5),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:30])
def test_a_refused_value_names_its_key(key, value):
    hf = tf.GraniteConfig(vocab_size=64, **TINY).to_dict()
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES["granite"].config_from_hf(hf)
    assert key in granite.REFUSED_KEYS and key in granite.READ_KEYS

