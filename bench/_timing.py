"""Shared timing helpers: interleaved repeats, medians, so both sides see the same machine noise."""
from __future__ import annotations

import math
import statistics
import time
from typing import Callable


def interleaved_medians(fns: dict[str, Callable[[], object]], repeats: int = 7, warmup: int = 2,
                        min_sample_seconds: float = 0.0) -> dict[str, float]:
    """Median seconds per call of each function, run in turn (a, b, a, b, ...) after warm-up.

    With `min_sample_seconds`, each sample runs a function as many times as it takes to fill that
    long (counted once, after warm-up) and divides: a 5 ms call timed alone is mostly timer and
    scheduler noise on a shared machine.
    """
    loops = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        start = time.perf_counter()
        fn()
        once = max(time.perf_counter() - start, 1e-6)
        loops[name] = max(1, math.ceil(min_sample_seconds / once))
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(loops[name]):
                fn()
            times[name].append((time.perf_counter() - start) / loops[name])
    return {name: statistics.median(ts) for name, ts in times.items()}
