"""Integrated gradients satisfy completeness on analytic models, and raise their step count when they do not."""
from __future__ import annotations

import pytest
import torch

from analysis.attribution import TensorInput, attribute_tensor
from analysis.attribution.completeness import integrate_until_complete, within_tolerance
from models.errors import InputError


def quadratic(x: torch.Tensor) -> torch.Tensor:
    """Two outputs per example: sum(w * x^2) and sum(x). From a zero baseline IG gives exactly w * x^2 and x."""
    w = torch.arange(1.0, 1.0 + x[0].numel()).reshape(x.shape[1:])
    return torch.stack([(w * x ** 2).flatten(1).sum(1), x.flatten(1).sum(1)], dim=1)  # (B, 2)


def steep(x: torch.Tensor) -> torch.Tensor:
    """tanh(40 (sum x - 1.1)): almost all of the change happens in a narrow stretch of the path."""
    s = x.flatten(1).sum(1)
    return torch.stack([torch.tanh(40 * (s - 1.1)), -s], dim=1)


def test_integrated_gradients_equal_the_analytic_answer_and_are_complete():
    values = torch.tensor([[[0.5, -1.0], [2.0, 0.25]]])  # (1, 2, 2)
    x = TensorInput(values=values, baseline=torch.zeros_like(values), unit_dims=2)
    result = attribute_tensor(quadratic, x, methods=["integrated_gradients"], target=0).results["integrated_gradients"]
    w = torch.arange(1.0, 5.0).reshape(2, 2)
    torch.testing.assert_close(result.raw, w * values[0] ** 2, atol=1e-4, rtol=1e-4)
    expected_difference = float((w * values[0] ** 2).sum())
    assert result.output_difference == pytest.approx(expected_difference, abs=1e-4)
    assert float(result.scores.sum()) == pytest.approx(expected_difference, abs=1e-4)  # completeness
    assert abs(result.convergence_delta) < 1e-4
    assert result.converged and result.n_steps == 50


def test_steps_are_raised_until_the_delta_is_within_five_percent():
    values = torch.full((1, 3, 1), 1.0)
    x = TensorInput(values=values, baseline=torch.zeros_like(values), unit_dims=1)
    result = attribute_tensor(steep, x, methods=["integrated_gradients"], target=0,
                              params={"integrated_gradients": {"n_steps": 10, "max_steps": 1600}}
                              ).results["integrated_gradients"]
    assert result.n_steps > 10  # 10 steps miss the steep stretch, so the run was repeated
    assert result.notes and result.notes[0].startswith("steps 10 -> 20")
    assert result.converged
    assert abs(result.convergence_delta) <= 0.05 * abs(result.output_difference)
    assert result.output_difference == pytest.approx(float(steep(values)[0, 0] - steep(torch.zeros_like(values))[0, 0]),
                                                     abs=1e-4)


def test_the_step_limit_is_respected_and_reported():
    values = torch.full((1, 3, 1), 1.0)
    x = TensorInput(values=values, baseline=torch.zeros_like(values), unit_dims=1)
    result = attribute_tensor(steep, x, methods=["integrated_gradients"], target=0,
                              params={"integrated_gradients": {"n_steps": 4, "max_steps": 8}}
                              ).results["integrated_gradients"]
    assert result.n_steps == 8
    assert not result.converged
    assert any("still above 5%" in note for note in result.notes)


def test_doubling_stops_at_the_first_run_within_tolerance():
    calls = []

    def fake(steps: int):
        calls.append(steps)
        delta = 0.8 / steps  # F(x) - F(b) = 1 always: 0.16, 0.08, then 0.04 is within 5%
        return torch.tensor([[1.0 + delta]]), torch.tensor([delta])

    run = integrate_until_complete(fake, n_steps=5, max_steps=400)
    assert calls == [5, 10, 20]
    assert run.n_steps == 20 and run.converged
    assert run.output_difference == pytest.approx(1.0)


def test_tolerance_has_a_floor_for_outputs_that_barely_change():
    assert within_tolerance(5e-6, 0.0)
    assert not within_tolerance(0.2, 1.0)


def test_bad_step_counts_raise_input_errors():
    with pytest.raises(InputError, match="at least 2 steps"):
        integrate_until_complete(lambda s: (torch.zeros(1, 1), torch.zeros(1)), n_steps=1)
    with pytest.raises(InputError, match="max_steps"):
        values = torch.ones(1, 2)
        attribute_tensor(quadratic, TensorInput(values, torch.zeros_like(values), 1), methods=["integrated_gradients"],
                         params={"integrated_gradients": {"n_steps": 100, "max_steps": 50}})
