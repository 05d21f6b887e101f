"""Attention rollout and gradient-weighted rollout on patterns whose answer is known by hand."""
from __future__ import annotations

import pytest
import torch

from analysis.rollout import attention_rollout, gradient_weighted_rollout
from models.errors import InputError


def _random_patterns(layers: int = 3, heads: int = 2, T: int = 5, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.softmax(torch.randn(1, heads, T, T, generator=g), dim=-1) for _ in range(layers)]


def test_rollout_rows_sum_to_one():
    flow = attention_rollout(_random_patterns())
    torch.testing.assert_close(flow.sum(dim=-1), torch.ones(1, 5))


def test_rollout_of_one_uniform_layer_is_half_identity_half_uniform():
    T = 4
    uniform = torch.full((1, 3, T, T), 1.0 / T)
    flow = attention_rollout([uniform])[0]
    expected = 0.5 * torch.eye(T) + 0.5 / T
    torch.testing.assert_close(flow, expected)


def test_rollout_multiplies_layers_in_order():
    a, b = _random_patterns(layers=2, heads=1)
    mix = lambda p: 0.5 * torch.eye(5) + 0.5 * p[0, 0]
    torch.testing.assert_close(attention_rollout([a, b])[0], mix(b) @ mix(a))
    assert not torch.allclose(mix(b) @ mix(a), mix(a) @ mix(b))  # the order is really tested


def test_full_residual_weight_gives_identity():
    torch.testing.assert_close(attention_rollout(_random_patterns(), residual_weight=1.0)[0], torch.eye(5))


def test_gradient_weighted_rollout_is_identity_without_gradient():
    patterns = _random_patterns()
    relevance = gradient_weighted_rollout(patterns, [torch.zeros_like(p) for p in patterns])
    torch.testing.assert_close(relevance[0], torch.eye(5))


def test_gradient_weighted_rollout_keeps_positive_part_and_accumulates():
    p = _random_patterns(layers=1, heads=2)[0]
    grad = torch.randn(p.shape, generator=torch.Generator().manual_seed(3))
    weighted = (grad * p).clamp_min(0).mean(dim=1)[0]
    torch.testing.assert_close(gradient_weighted_rollout([p], [grad])[0], torch.eye(5) + weighted)
    assert (grad * p).min() < 0  # negative products exist and were dropped


def test_bad_arguments_raise_input_error():
    with pytest.raises(InputError, match="No attention patterns"):
        attention_rollout([])
    with pytest.raises(InputError, match="residual_weight"):
        attention_rollout(_random_patterns(), residual_weight=1.5)
    with pytest.raises(InputError, match="start_layer"):
        attention_rollout(_random_patterns(), start_layer=7)
