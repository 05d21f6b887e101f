"""Integrated gradients with a completeness check that raises the step count until it holds.

Completeness (Sundararajan, Taly & Yan 2017, "Axiomatic Attribution for Deep Networks"):
the attributions of integrated gradients add up to F(x) - F(baseline). The integral is
approximated with a finite number of steps, and Captum reports the gap as the convergence
delta, sum(attributions) - (F(x) - F(baseline)). When |delta| exceeds 5% of
|F(x) - F(baseline)|, the run is repeated with twice the steps, up to a limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from models.errors import InputError

from .result import Progress, no_progress

TOLERANCE = 0.05          # |delta| may be at most this share of |F(x) - F(baseline)|
ABSOLUTE_FLOOR = 1e-5     # when F barely changes, 5% of it is below float32 noise: accept this much
DEFAULT_STEPS = 50
MAX_STEPS = 400

# n_steps -> (attributions (1, ...), Captum's convergence delta (1,))
AttributeFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]


@dataclass
class CompletenessRun:
    attributions: torch.Tensor    # Captum's output of the final run, (1, ...)
    delta: float                  # Captum's convergence delta of the final run
    output_difference: float      # F(x) - F(baseline) = sum(attributions) - delta
    n_steps: int                  # steps of the final run
    converged: bool
    history: list[tuple[int, float]]  # (n_steps, delta) of every run, first to last


def within_tolerance(delta: float, output_difference: float, tolerance: float = TOLERANCE) -> bool:
    return abs(delta) <= max(tolerance * abs(output_difference), ABSOLUTE_FLOOR)


def integrate_until_complete(attribute: AttributeFn, n_steps: int = DEFAULT_STEPS, max_steps: int = MAX_STEPS,
                             tolerance: float = TOLERANCE, progress: Progress = no_progress) -> CompletenessRun:
    """Run `attribute(n_steps)`; while the delta is above tolerance, double the steps (at most `max_steps`)."""
    if n_steps < 2:
        raise InputError(f"Integrated gradients needs at least 2 steps; got {n_steps}.")
    if max_steps < n_steps:
        raise InputError(f"The step limit ({max_steps}) is below the starting step count ({n_steps}).")
    history: list[tuple[int, float]] = []
    steps = n_steps
    while True:
        progress(0.0, f"integrated gradients, {steps} steps")
        attributions, delta_tensor = attribute(steps)
        delta = float(delta_tensor.sum())
        # Captum's delta is sum(attr) - (F(x) - F(b)), so F(x) - F(b) comes without another forward pass
        difference = float(attributions.double().sum()) - delta
        history.append((steps, delta))
        converged = within_tolerance(delta, difference, tolerance)
        if converged or steps >= max_steps:
            return CompletenessRun(attributions, delta, difference, steps, converged, history)
        steps = min(2 * steps, max_steps)
