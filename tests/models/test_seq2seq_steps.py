"""A pipeline's text-to-text trace, joined from the decoding steps, equals a second teacher-forced decoder pass
over the output: states, logits, self- and cross-attention (and T5's position bias), masked heads included."""
from __future__ import annotations

import pytest
import torch
import transformers as tf

from models import load_model
from models.deferred_patterns import DEFERRED
from tests.models.seq2seq_parity import make_seq2seq_checkpoint
from tests.models.tiny_seq2seq import make_t5

SOURCE = "the cat sat on the mat . a dog barked loudly"


@pytest.fixture(scope="module", params=["t5", "bart", "embedded"])
def model(request, tmp_path_factory):
    if request.param == "embedded":
        return load_model("numbers-to-words")
    folder = tmp_path_factory.mktemp(request.param)
    if request.param == "t5":
        make_t5(folder, relative_attention_num_buckets=8, relative_attention_max_distance=16)
    else:
        make_seq2seq_checkpoint(tf.BartConfig, tf.BartForConditionalGeneration, folder, ["<s>", "<pad>", "</s>"],
                                "<s> $A </s>", "<s> $A </s> </s> $B </s>",
                                {"bos_token": "<s>", "pad_token": "<pad>", "eos_token": "</s>", "unk_token": "[UNK]"},
                                bos_token_id=0, pad_token_id=1, eos_token_id=2, decoder_start_token_id=2)
    loaded = load_model(str(folder))
    loaded.config.eos_token_id = None  # run every step, so the joined trace is long
    loaded.generation_config = {**loaded.generation_config, "eos_token_id": None}
    return loaded


def _source(model):
    return "4071" if model.name == "numbers-to-words" else SOURCE


def _assert_equal(joined, full):
    assert joined.tokens == full.tokens and torch.equal(joined.input_ids, full.input_ids)
    for a, b in zip(joined.hidden_states, full.hidden_states, strict=True):  # other matrix shapes: rounding only
        torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    torch.testing.assert_close(joined.logits, full.logits, atol=1e-4, rtol=0)
    for key in ("decoder_attentions", "cross_attentions", "encoder_attentions"):
        for a, b in zip(getattr(joined, key), getattr(full, key), strict=True):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    if "decoder_position_bias" in full.extras:
        torch.testing.assert_close(joined.extras["decoder_position_bias"], full.extras["decoder_position_bias"])


@pytest.mark.parametrize("max_new_tokens", [1, 7])
def test_the_joined_trace_equals_a_second_decoder_pass(model, max_new_tokens):
    source = _source(model)
    joined = model.run(source, capture=DEFERRED, max_new_tokens=max_new_tokens)
    assert joined.attentions_pending  # nothing computed yet: the patterns are the steps' pending ones
    full = model.run(source, capture=True, max_new_tokens=max_new_tokens)
    assert joined.input_ids.shape[1] == full.input_ids.shape[1] > 1
    _assert_equal(joined, full)


def test_with_masked_heads_too(model):
    source = _source(model)
    spec = {("decoder", 0): [0], ("cross", 1): [1], ("encoder", 0): [2]}
    with model.mask_heads(spec):
        joined = model.run(source, capture=DEFERRED, max_new_tokens=5)
        full = model.run(source, capture=True, max_new_tokens=5)
    _assert_equal(joined, full)
    assert torch.all(joined.decoder_attentions[0][:, 0] == 0)
