"""Qwen3: per-head q/k RMSNorm, its own head_dim, optional biases, Qwen2's sliding window, yarn scaling."""
from __future__ import annotations

import re

import pytest
import transformers as tf

from models import load_model
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES, qwen3
from tests.models.decoder_classifier import check_sequence_classification
from tests.models.decoder_parity import check_decoder_family, make_decoder_checkpoint

# head_dim 10 is not hidden / heads (36 / 6 = 6): the q/k norms are (10,)
TINY = dict(hidden_size=36, num_hidden_layers=3, num_attention_heads=6, num_key_value_heads=2, head_dim=10,
            intermediate_size=43, max_position_embeddings=64)
VARIANTS = {
    "plain": {},
    "biased-tied": dict(attention_bias=True, tie_word_embeddings=True),
    # layers 1 and 2 attend within 3 positions
    "sliding-window": dict(use_sliding_window=True, sliding_window=3, max_window_layers=1),
    "yarn": dict(max_position_embeddings=32,
                 rope_scaling={"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}),
}


@pytest.mark.parametrize("name", VARIANTS)
def test_qwen3_equals_transformers(tmp_path, name):
    reference = make_decoder_checkpoint(tf.Qwen3Config, tf.Qwen3ForCausalLM, tmp_path / "m",
                                        **{**TINY, **VARIANTS[name]})
    model = load_model(str(tmp_path / "m"))
    attn = model.network.blocks[0].attn
    assert model.family == "qwen3" and attn.q_norm.weight.shape == (10,) and not attn.whole_projection_norm
    assert (attn.o_proj.bias is not None) == bool(VARIANTS[name].get("attention_bias"))
    if name == "sliding-window":
        assert model.config.layer_types == ("full_attention", "sliding_attention", "sliding_attention")
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_sequence_classification(tmp_path):
    check_sequence_classification(tf.Qwen3Config, tf.Qwen3ForSequenceClassification, tmp_path / "c", **TINY)


def _hf() -> dict:
    return tf.Qwen3Config(vocab_size=64, **TINY).to_dict()


REFUSED = [
    ("rope_scaling", {"rope_type": "mrope", "mrope_section": [2, 2, 1]}),
    ("hidden_act", "gelu_fast"),
    ("partial_rotary_factor", 0.5),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:30])
def test_a_refused_value_names_its_key(key, value):
    hf = _hf()
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES["qwen3"].config_from_hf(hf)
    assert key in qwen3.REFUSED_KEYS and key in qwen3.READ_KEYS

