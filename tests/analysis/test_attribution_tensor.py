"""Pixel and audio-feature attribution on tiny analytic torch models, where every answer is known by hand."""
from __future__ import annotations

import pytest
import torch

from analysis.attribution import AttentionMap, TensorInput, attribute_tensor
from models.errors import InputError

LABELS = {0: "bright", 1: "dark"}


def linear_image_model(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, 4, 4) -> (B, 2): class 0 weighs pixels by their column, class 1 is their negated sum."""
    w = torch.arange(4.0).expand(3, 4, 4)  # weight = column index, same for every channel and row
    return torch.stack([(w * x).flatten(1).sum(1), -x.flatten(1).sum(1)], dim=1)


@pytest.fixture
def image() -> TensorInput:
    g = torch.Generator().manual_seed(0)
    values = torch.rand(1, 3, 4, 4, generator=g)
    return TensorInput(values=values, baseline=torch.zeros_like(values), unit_dims=2)


def test_gradient_methods_on_a_linear_model_match_the_weights(image):
    report = attribute_tensor(linear_image_model, image, methods=["integrated_gradients", "saliency", "input_x_gradient"],
                              target=0, labels=LABELS)
    w = torch.arange(4.0).expand(3, 4, 4)
    expected = (w * image.values[0]).sum(0)  # (4, 4): channels summed
    torch.testing.assert_close(report.results["integrated_gradients"].scores, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(report.results["input_x_gradient"].scores, expected)
    torch.testing.assert_close(report.results["saliency"].scores, w[0])  # |gradient|, max over channels
    assert report.results["integrated_gradients"].scores.shape == (4, 4)
    assert report.target.label == "bright" and report.target.chosen


def test_occlusion_of_single_pixels_on_a_linear_model(image):
    report = attribute_tensor(linear_image_model, image, methods=["occlusion"], target=1, labels=LABELS)
    # class 1 = -sum: removing a pixel (all its channels) raises it, so each pixel's score is minus its channel sum
    expected = -image.values[0].sum(0)
    torch.testing.assert_close(report.results["occlusion"].scores, expected)


def test_occlusion_windows_cover_every_unit(image):
    report = attribute_tensor(linear_image_model, image, methods=["occlusion"], target=0,
                              params={"occlusion": {"window": 2, "stride": 2}})
    scores = report.results["occlusion"].scores
    assert scores.shape == (4, 4)
    # with 2x2 windows at stride 2 each pixel gets the drop of the one window that covers it
    w = torch.arange(4.0).expand(3, 4, 4)
    window_total = (w * image.values[0]).sum(0)[:2, :2].sum()
    assert float(scores[0, 0]) == pytest.approx(float(window_total), abs=1e-4)
    assert float(scores[1, 1]) == float(scores[0, 0])


def audio_model(x: torch.Tensor) -> torch.Tensor:
    """(B, 4 bins, 10 frames) -> (B, 2): class 0 listens to frames 3..5 only."""
    frames = torch.zeros(10)
    frames[3:6] = 1.0
    return torch.stack([(x * frames).flatten(1).sum(1), x.flatten(1).mean(1)], dim=1)


def test_audio_features_attribute_over_time():
    values = torch.ones(1, 4, 10)
    x = TensorInput(values=values, baseline=torch.zeros_like(values), unit_dims=1)
    report = attribute_tensor(audio_model, x, methods=["integrated_gradients", "occlusion"], target=0,
                              modality="audio", unit_seconds=0.02)
    for key in ("integrated_gradients",):
        scores = report.results[key].scores
        assert scores.shape == (10,)
        torch.testing.assert_close(scores[3:6], torch.full((3,), 4.0), atol=1e-5, rtol=0)  # 4 bins each
        assert scores[:3].abs().max() < 1e-6 and scores[6:].abs().max() < 1e-6
    assert report.results["occlusion"].scores[4] > 0 and report.results["occlusion"].scores[0] == 0


def test_attention_methods_map_the_deciding_token_onto_units(image):
    T = 5  # [CLS] + 4 patches of 2x2 pixels
    uniform = torch.full((1, 2, T, T), 1.0 / T)

    def read(values, target, with_gradients):
        patterns = [uniform.clone().requires_grad_(True)]
        gradients = None
        if with_gradients:
            gradients = [torch.zeros(1, 2, T, T)]
            gradients[0][..., 1] = 1.0  # only the first patch's column matters
        return patterns, gradients

    def to_units(row):  # (T,) -> (4, 4): each patch's score on its 2x2 pixels
        return row[1:].reshape(2, 2).repeat_interleave(2, 0).repeat_interleave(2, 1)

    image.attention = AttentionMap(read=read, row=0, to_units=to_units)
    report = attribute_tensor(linear_image_model, image, methods=["attention_rollout", "attention_x_gradient"], target=0)
    rollout = report.results["attention_rollout"].scores
    torch.testing.assert_close(rollout, torch.full((4, 4), 0.5 / T))  # half of the [CLS] row is residual
    relevance = report.results["attention_x_gradient"].scores
    assert relevance[:2, :2].min() > 0 and relevance[2:, :].abs().max() == 0 and relevance[:2, 2:].abs().max() == 0


def test_attention_methods_need_attention(image):
    with pytest.raises(InputError, match="exposes no attention"):
        attribute_tensor(linear_image_model, image, methods=["attention_rollout"])


def test_bad_tensor_inputs_are_clear_errors(image):
    empty = torch.zeros(1, 3, 0, 0)
    with pytest.raises(InputError, match="Empty input"):
        attribute_tensor(linear_image_model, TensorInput(empty, empty, 2), methods=["saliency"])
    with pytest.raises(InputError, match="baseline"):
        attribute_tensor(linear_image_model, TensorInput(image.values, torch.zeros(1, 3, 2, 2), 2), methods=["saliency"])
    with pytest.raises(InputError, match="Target 5 is out of range: this model has 2 classes: 0 \\(bright\\)"):
        attribute_tensor(linear_image_model, image, methods=["saliency"], target=5, labels=LABELS)
    nan = image.values.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(InputError, match="NaN"):
        attribute_tensor(linear_image_model, TensorInput(nan, image.baseline, 2), methods=["saliency"])


def test_tensor_attribution_is_deterministic(image):
    methods = ["integrated_gradients", "saliency", "input_x_gradient", "occlusion"]
    a = attribute_tensor(linear_image_model, image, methods=methods, target=0)
    b = attribute_tensor(linear_image_model, image, methods=methods, target=0)
    for key in methods:
        assert torch.equal(a.results[key].scores, b.results[key].scores)
