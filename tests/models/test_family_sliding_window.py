"""Sliding-window attention, which used to be silently ignored: Mistral with a window shorter than the text
differed from transformers by 19 in the hidden states. Now each layer type gets its own mask."""
from __future__ import annotations

import pytest
import transformers as tf

from models import load_model
from tests.models.decoder_parity import check_decoder_family, make_decoder_checkpoint

TINY = dict(hidden_size=32, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, intermediate_size=40,
            max_position_embeddings=64)


def test_mistral_window_shorter_than_the_text(tmp_path):
    reference = make_decoder_checkpoint(tf.MistralConfig, tf.MistralForCausalLM, tmp_path / "m", sliding_window=3, **TINY)
    check_decoder_family(reference, tmp_path / "m", tmp_path)


def test_qwen2_window_from_max_window_layers_on(tmp_path):
    reference = make_decoder_checkpoint(tf.Qwen2Config, tf.Qwen2ForCausalLM, tmp_path / "m", use_sliding_window=True,
                                        sliding_window=2, max_window_layers=1, **TINY)
    assert reference.config.layer_types == ["full_attention", "sliding_attention", "sliding_attention"]
    check_decoder_family(reference, tmp_path / "m", tmp_path)


@pytest.mark.parametrize("window", [3, None])
def test_the_window_changes_what_is_attended(tmp_path, window):
    make_decoder_checkpoint(tf.MistralConfig, tf.MistralForCausalLM, tmp_path / "m", sliding_window=window, **TINY)
    pattern = load_model(str(tmp_path / "m")).run("the cat sat on the mat .").attentions[0][0, 0]  # (T, T)
    beyond = pattern.tril(-3)  # keys 3 or more positions back
    assert (beyond == 0).all() if window == 3 else (beyond > 0).any()
