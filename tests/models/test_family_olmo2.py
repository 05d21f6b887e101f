"""OLMo 2: norms after each sublayer, q/k RMSNorm over the whole projection (every head together), kept exact
through pruning by the removed heads' rows."""
from __future__ import annotations

import re

import pytest
import torch
import transformers as tf

from models import load_model
from models.errors import UnsupportedArchitectureError
from models.families import FAMILIES, olmo2
from tests.models.decoder_classifier import check_score_head_on_bare_model
from tests.models.decoder_parity import BATCH, check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=40, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=47,
            max_position_embeddings=64)
VARIANTS = {
    "plain": {},
    "biased-tied": dict(attention_bias=True, tie_word_embeddings=True),
    "multi-head-dynamic": dict(num_key_value_heads=4, max_position_embeddings=8,
                               rope_scaling={"type": "dynamic", "factor": 4.0}),
}
# layer 0 loses a whole key/value group (heads 0 and 1 share one): the k norm keeps that group's rows too
PRUNE = {0: [0, 1], 2: [3]}


@pytest.mark.parametrize("name", VARIANTS)
def test_olmo2_equals_transformers(tmp_path, name):
    reference = make_decoder_checkpoint(tf.Olmo2Config, tf.Olmo2ForCausalLM, tmp_path / "m",
                                        **{**TINY, **VARIANTS[name]})
    model = load_model(str(tmp_path / "m"))
    block = model.network.blocks[0]
    assert block.norms == "post_sublayer" and block.ln1 is None and block.attn.whole_projection_norm
    assert block.attn.q_norm.weight.shape == (40,) and block.attn.k_norm.weight.shape == (block.attn.n_kv_heads * 10,)
    check_decoder_family(reference, tmp_path / "m", tmp_path, prune=PRUNE)


def test_pruning_keeps_the_norm_statistics_and_survives_save_and_reload(tmp_path):
    """Pruned equals masked only because the removed heads' rows still enter the norm: dropping them changes
    the numbers. A pruned checkpoint reloads to the same model, and can be pruned again."""
    make_decoder_checkpoint(tf.Olmo2Config, tf.Olmo2ForCausalLM, tmp_path / "m", **{**TINY, **VARIANTS["biased-tied"]})
    model = load_model(str(tmp_path / "m"))
    with model.mask_heads(PRUNE):
        masked = model.run(BATCH)
    pruned = model.prune_heads(PRUNE)
    attn = pruned.network.blocks[0].attn
    assert attn.q_norm.pruned_rows.weight.shape == (20, 40) and attn.k_norm.pruned_rows.weight.shape == (10, 40)
    out = pruned.run(BATCH)
    real = out.attention_mask.bool()
    torch.testing.assert_close(out.hidden_states[-1][real], masked.hidden_states[-1][real], atol=1e-5, rtol=1e-5)
    with torch.no_grad():  # without the removed rows' squares the statistic, and so every number after it, moves
        attn.q_norm.pruned_rows.weight.zero_()
        attn.q_norm.pruned_rows.bias.zero_()
    assert (pruned.run(BATCH).hidden_states[1][real] - masked.hidden_states[1][real]).abs().max() > 1e-2
    pruned = model.prune_heads(PRUNE)
    again = load_model(str(pruned.save_pretrained(tmp_path / "pruned")))
    assert again.config.pruned_heads == pruned.config.pruned_heads
    for a, b in zip(again.run(BATCH).hidden_states, out.hidden_states):
        assert torch.equal(a, b)
    with model.mask_heads({0: [0, 1, 3], 2: [3]}):
        masked_more = model.run(BATCH)
    twice = again.prune_heads({0: [3]}).run(BATCH)
    torch.testing.assert_close(twice.hidden_states[-1][real], masked_more.hidden_states[-1][real], atol=1e-5, rtol=1e-5)


def test_sequence_classification_on_the_bare_model(tmp_path):
    check_score_head_on_bare_model(tf.Olmo2Config, tf.Olmo2Model, tmp_path / "c", "Olmo2ForSequenceClassification",
                                   **TINY)


REFUSED = [
    ("rope_scaling", {"rope_type": "ntk-unknown", "factor": 2.0}),
    ("rope_scaling", {"rope_type": "yarn", "factor": 2.0}),  # a type Olmo2Config does not take
    ("hidden_act", "gelu_fast"),
    ("partial_rotary_factor", 0.25),
]


@pytest.mark.parametrize("key, value", REFUSED, ids=lambda v: str(v)[:30])
def test_a_refused_value_names_its_key(key, value):
    hf = tf.Olmo2Config(vocab_size=64, **TINY).to_dict()
    hf[key] = value
    with pytest.raises(UnsupportedArchitectureError, match=re.escape(f"{key}={value!r}")):
        FAMILIES["olmo2"].config_from_hf(hf)
    assert key in olmo2.REFUSED_KEYS and key in olmo2.READ_KEYS

