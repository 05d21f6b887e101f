"""GPT-2's attention variants against transformers: scores divided by layer_idx + 1 in each layer
(scale_attn_by_inverse_layer_idx, silently ignored before: the logits differed by 13), the float32 reordered scores
(reorder_and_upcast_attn), no 1/sqrt(d_head) (scale_attn_weights false); defaults; refused keys."""
from __future__ import annotations

import pytest
import transformers as tf

from models.families import FAMILIES, gpt2
from tests.models.config_keys import assert_refused
from tests.models.decoder_parity import check_decoder_family, make_decoder_checkpoint

TINY = dict(n_embd=40, n_layer=3, n_head=5, n_inner=37, n_positions=64)

CASES = {
    "inverse-layer-idx": dict(scale_attn_by_inverse_layer_idx=True),
    "inverse-layer-idx-reordered-upcast": dict(scale_attn_by_inverse_layer_idx=True, reorder_and_upcast_attn=True),
    "unscaled-scores": dict(scale_attn_weights=False, n_embd=24, n_head=6, activation_function="relu"),
}


@pytest.mark.parametrize("case", CASES)
def test_parity_with_transformers(tmp_path, case):
    reference = make_decoder_checkpoint(tf.GPT2Config, tf.GPT2LMHeadModel, tmp_path / "m", **{**TINY, **CASES[case]})
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_each_layer_gets_its_own_scale():
    cfg = FAMILIES["gpt2"].config_from_hf({**TINY, "scale_attn_by_inverse_layer_idx": True})
    scales = [block.attn.scale for block in FAMILIES["gpt2"].build(cfg).blocks]
    assert scales == pytest.approx([8 ** -0.5 / (i + 1) for i in range(3)])


def test_missing_keys_mean_transformers_defaults():
    """config.json leaves out the keys equal to GPT2Config's defaults (a GPT-2 small shape has no n_embd there)."""
    theirs = tf.GPT2Config().to_dict()
    assert {k: theirs.get(k, False) for k in gpt2.DEFAULTS} == gpt2.DEFAULTS  # add_cross_attention: False if absent
    ours = FAMILIES["gpt2"].config_from_hf({"model_type": "gpt2"})
    assert (ours.d_model, ours.n_layers, ours.n_heads, ours.max_positions) == (768, 12, 12, 1024)


@pytest.mark.parametrize("key, value", [("activation_function", "gelu_fast"), ("add_cross_attention", True)])
def test_a_refused_value_names_its_key(key, value):
    hf = {**tf.GPT2Config(**TINY).to_dict(), key: value}
    assert_refused(FAMILIES["gpt2"].config_from_hf, hf, key)
