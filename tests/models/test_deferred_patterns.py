"""`run(capture="deferred")` computes attention patterns on first read, equal to the captured ones.

Pipelines run this way (fused attention, patterns only when someone looks), so every pattern a
pipeline's trace gives must equal what `capture=True` gives: same model, same input, any family,
with head masks, padding, grouped-query attention, and a hook that must see the pattern live.
"""
from __future__ import annotations

import pytest
import torch

from models import load_model, pipeline
from models.deferred_patterns import DEFERRED
from tests.tiny_modal_models import make_vit, make_whisper, noise_clip
from tests.tiny_models import make_checkpoint

TEXTS = ["the cat sat on the mat .", "a dog barked ."]  # different lengths: padding in the batch


def _assert_same(deferred, captured) -> None:
    assert len(deferred) == len(captured) > 0
    for layer, (a, b) in enumerate(zip(deferred, captured)):
        assert a.shape == b.shape, layer
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0, msg=f"layer {layer}")


@pytest.mark.parametrize("kind", ["bert", "gpt2", "llama", "qwen2"])
def test_text_patterns_equal_captured_ones_and_wait_to_be_read(tmp_path, kind):
    make_checkpoint(kind, tmp_path)
    model = load_model(str(tmp_path))
    deferred = model.run(TEXTS, capture=DEFERRED)
    assert deferred.attentions_pending  # nothing computed yet
    assert deferred.n_layers == model.n_layers and deferred.attentions_pending  # counting layers reads none
    captured = model.run(TEXTS)
    assert not captured.attentions_pending
    torch.testing.assert_close(deferred.logits, captured.logits, atol=1e-5, rtol=0)
    _assert_same(deferred.attentions, captured.attentions)
    assert not deferred.attentions_pending
    assert deferred.attentions is deferred.attentions  # computed once, then kept


def test_masked_heads_are_reported_as_the_capture_path_reports_them(tmp_path):
    make_checkpoint("llama", tmp_path)  # grouped-query attention: 4 query heads over 2 key/value heads
    model = load_model(str(tmp_path))
    with model.mask_heads({0: [1], 1: {2: 0.5}}):
        deferred = model.run(TEXTS, capture=DEFERRED)
        captured = model.run(TEXTS)
    # read after the mask's scope has ended: the scales were kept with the pending pattern
    _assert_same(deferred.attentions, captured.attentions)
    assert float(deferred.attentions[0][:, 1].abs().max()) == 0.0


def test_a_hook_on_the_pattern_still_sees_it_during_the_forward(tmp_path):
    make_checkpoint("bert", tmp_path)
    model = load_model(str(tmp_path))
    seen = []

    def zero_head_zero(pattern, name):
        seen.append(name)
        pattern = pattern.clone()
        pattern[:, 0] = 0.0
        return pattern

    with model.hooks({"blocks.1.attn.hook_pattern": zero_head_zero}):
        deferred = model.run(TEXTS, capture=DEFERRED)
        captured = model.run(TEXTS)
    assert seen == ["blocks.1.attn.hook_pattern"] * 2  # the hooked layer ran its pattern in both
    torch.testing.assert_close(deferred.logits, captured.logits, atol=1e-6, rtol=0)  # the edit changed the output alike
    _assert_same(deferred.attentions, captured.attentions)


def test_vit_patterns_equal_captured_ones(tmp_path):
    make_vit(tmp_path)
    model = load_model(str(tmp_path))
    images = [torch.rand(3, 40, 40).mul(255).byte().permute(1, 2, 0).numpy() for _ in range(2)]
    deferred, captured = model.run(images=images, capture=DEFERRED), model.run(images=images)
    assert deferred.attentions_pending
    _assert_same(deferred.attentions, captured.attentions)


def test_whisper_encoder_decoder_and_cross_patterns_equal_captured_ones(tmp_path):
    make_whisper(tmp_path)
    model = load_model(str(tmp_path))
    clips = [noise_clip(1.5, seed=0), noise_clip(0.7, seed=1)]
    deferred = model.run(audio=clips, sampling_rate=16000, capture=DEFERRED)
    captured = model.run(audio=clips, sampling_rate=16000)
    assert deferred.extras["transcripts"] == captured.extras["transcripts"]
    assert deferred.attentions_pending
    _assert_same(deferred.encoder_attentions, captured.encoder_attentions)
    _assert_same(deferred.cross_attentions, captured.cross_attentions)
    _assert_same(deferred.decoder_attentions, captured.decoder_attentions)
    _assert_same(deferred.attentions, captured.attentions)
    assert not deferred.attentions_pending
    one = deferred.example(1)  # per-example slicing still works on what was deferred
    assert one.encoder_attentions[0].shape[0] == 1


def test_a_pipeline_result_carries_a_trace_whose_patterns_wait_until_read(tmp_path):
    make_checkpoint("bert-cls", tmp_path)
    result = pipeline("text-classification", str(tmp_path))(TEXTS[0])
    assert result.trace.attentions_pending
    captured = load_model(str(tmp_path)).run(TEXTS[0])
    _assert_same(result.trace.attentions, captured.attentions)
