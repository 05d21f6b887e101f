"""What pruning bought: parameters removed and the measured speed-up on the same inputs.

The two models run in turn on the fast path after a warm-up, in pairs of rounds (A then B, then
B then A), so each model runs second in a round, with warm caches, as often as the other. The
speed-up is the ratio of the two median times, exactly the numbers a page shows next to it: the
median of per-round ratios is another estimator, and on a loaded machine the two can differ by
10 % (the Heads page once said "Speed-up 1.11x" above "892.0 ms before, 892.3 ms after"). How much
it moves is the middle half of the per-pair ratios (each pair's summed times, so order cancels;
a slow moment on a shared machine hits both models of a pair).
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Sequence

import torch

from models.errors import InputError
from models.workbench_model import WorkbenchModel


def _no_progress(fraction: float, message: str) -> None:
    """The default progress callback: say nothing."""


def _quartiles(values: Sequence[float]) -> tuple[float, float]:
    """(first, third) quartile; both the value itself for a single one."""
    if len(values) < 2:
        return (values[0], values[0])
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return (q1, q3)


@dataclass(frozen=True)
class PruningReport:
    parameters_before: int
    parameters_after: int
    heads_before: int
    heads_after: int
    ms_before: float                   # median milliseconds per forward pass of the batch, over every timed run
    ms_after: float
    tokens: int                        # real tokens in the timed batch
    round_ratios: tuple[float, ...]    # before / after time of each pair of rounds (AB then BA)
    runs: int = 0                      # timed forward passes of each model
    ms_before_range: tuple[float, float] = (0.0, 0.0)  # middle half (quartiles) of the times
    ms_after_range: tuple[float, float] = (0.0, 0.0)

    @property
    def parameters_removed(self) -> int:
        return self.parameters_before - self.parameters_after

    @property
    def speedup(self) -> float:
        """Throughput of the pruned model over the original's (> 1: faster): ``ms_before / ms_after``."""
        return self.ms_before / self.ms_after

    @property
    def speedup_range(self) -> tuple[float, float]:
        """The middle half of the per-pair ratios: how much the speed-up moves from pair to pair."""
        return _quartiles(sorted(self.round_ratios))

    def summary(self) -> str:
        """One sentence with every number behind the speed-up, for a page or a notebook."""
        low, high = self.speedup_range
        return (f"Speed-up {self.speedup:.2f}× = median forward time {self.ms_before:.1f} ms before / "
                f"{self.ms_after:.1f} ms after ({self.runs} runs of each model in pairs of rounds, order "
                f"alternating, on a batch of {self.tokens} tokens); pair to pair it moved between "
                f"{low:.2f}× and {high:.2f}× (middle half of {len(self.round_ratios)} pairs).")


def compare_pruned(original: WorkbenchModel, pruned: WorkbenchModel, texts: Sequence[str], repeats: int = 8,
                   warmup: int = 1, progress: Callable[[float, str], None] = _no_progress) -> PruningReport:
    """Parameters of both models and their median time on one batch of `texts`.

    `repeats` timed runs of each model (rounded up to an even number: pairs of rounds, AB then BA),
    after `warmup` untimed runs of each. `progress(fraction, message)` is called after every round.
    """
    if repeats < 1:
        raise InputError(f"repeats must be at least 1; got {repeats}.")
    rounds = repeats + repeats % 2
    enc = original.encode(list(texts))
    inputs = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, token_type_ids=enc.token_type_ids,
                  capture=False)
    times: dict[str, list[float]] = {"before": [], "after": []}
    total = warmup + rounds
    with torch.inference_mode():
        for round_ in range(total):
            pair = (("before", original), ("after", pruned))
            for key, model in (pair if round_ % 2 == 0 else pair[::-1]):
                start = time.perf_counter()
                model.forward(**inputs)
                if round_ >= warmup:
                    times[key].append(time.perf_counter() - start)
            progress((round_ + 1) / total, f"timing both models: round {round_ + 1} of {total}"
                     + (" (warm-up)" if round_ < warmup else ""))
    before, after = times["before"], times["after"]
    ratios = tuple((before[i] + before[i + 1]) / (after[i] + after[i + 1]) for i in range(0, rounds, 2))
    ms = lambda values: statistics.median(values) * 1e3  # noqa: E731
    return PruningReport(
        parameters_before=original.num_parameters(), parameters_after=pruned.num_parameters(),
        heads_before=sum(len(h) for h in original.head_ids()), heads_after=sum(len(h) for h in pruned.head_ids()),
        ms_before=ms(before), ms_after=ms(after), tokens=int(enc.attention_mask.sum()), round_ratios=ratios,
        runs=rounds, ms_before_range=tuple(v * 1e3 for v in _quartiles(sorted(before))),
        ms_after_range=tuple(v * 1e3 for v in _quartiles(sorted(after))))
