"""What pruning bought: parameters removed and the measured speed-up on the same inputs.

The two models run in turn on the fast path after a warm-up, the order alternating each round,
and the speed-up is the median over rounds of that round's ratio: on a shared machine absolute
times drift, and a slow moment hits both runs of a round.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Sequence

import torch

from models.errors import InputError
from models.workbench_model import WorkbenchModel


@dataclass(frozen=True)
class PruningReport:
    parameters_before: int
    parameters_after: int
    heads_before: int
    heads_after: int
    ms_before: float                 # median milliseconds per forward pass of the batch
    ms_after: float
    tokens: int                      # real tokens in the timed batch
    round_ratios: tuple[float, ...]  # before / after time, per round

    @property
    def parameters_removed(self) -> int:
        return self.parameters_before - self.parameters_after

    @property
    def speedup(self) -> float:
        """Throughput of the pruned model over the original's (> 1: faster): the median paired ratio."""
        return statistics.median(self.round_ratios)


def compare_pruned(original: WorkbenchModel, pruned: WorkbenchModel, texts: Sequence[str], repeats: int = 7,
                   warmup: int = 1) -> PruningReport:
    """Parameters of both models and their interleaved median time on one batch of `texts`."""
    if repeats < 1:
        raise InputError(f"repeats must be at least 1; got {repeats}.")
    enc = original.encode(list(texts))
    inputs = dict(input_ids=enc.input_ids, attention_mask=enc.attention_mask, token_type_ids=enc.token_type_ids,
                  capture=False)
    times: dict[str, list[float]] = {"before": [], "after": []}
    with torch.inference_mode():
        for round_ in range(warmup + repeats):
            pair = (("before", original), ("after", pruned))
            for key, model in (pair if round_ % 2 == 0 else pair[::-1]):
                start = time.perf_counter()
                model.forward(**inputs)
                if round_ >= warmup:
                    times[key].append(time.perf_counter() - start)
    return PruningReport(
        parameters_before=original.num_parameters(), parameters_after=pruned.num_parameters(),
        heads_before=sum(len(h) for h in original.head_ids()), heads_after=sum(len(h) for h in pruned.head_ids()),
        ms_before=statistics.median(times["before"]) * 1e3, ms_after=statistics.median(times["after"]) * 1e3,
        tokens=int(enc.attention_mask.sum()),
        round_ratios=tuple(b / a for b, a in zip(times["before"], times["after"])))
