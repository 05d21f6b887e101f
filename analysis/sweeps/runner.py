"""`run_sweep`: a sweep over a dataset, shard by shard, on an executor; resumable, aggregates only.

    result = run_sweep(EvaluateSweep(models=("minilm-sentiment",)), data, executor="ray", out="eval.parquet")

What happens, in order: the executor loads the models and reports their facts; the sweep checks
the data against them (a missing column, an unknown label: an error before anything runs);
shards already stored under `parts_dir` (default `OUT.parquet.parts/`) are read back, the others
run and are stored as they finish; the partials are reduced in shard order (the same order for
every executor, hence the same numbers) and the result is written to `out` in one atomic step.
An error, Ctrl-C or `cancel()` leaves the stored shards, and any earlier `out`, as they were.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from models.errors import WorkbenchError

from .data import Dataset
from .executors import make_executor
from .results import SweepResult
from .store import PartStore

Progress = Callable[[float, str], None]
DEFAULT_SHARD_SIZE = 64


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: say nothing."""


class SweepCancelled(WorkbenchError):
    """Raised when `cancel()` says stop; the shards finished so far are kept and a rerun resumes from them."""

    def __init__(self, done: int, total: int) -> None:
        super().__init__(f"Cancelled after {done} of {total} shards; run it again to resume from there.")
        self.done, self.total = done, total


def run_sweep(sweep: Any, data: Dataset, executor: str | Any = "local", out: str | Path | None = None,
              shard_size: int = DEFAULT_SHARD_SIZE, parts_dir: str | Path | None = None,
              progress: Progress = no_progress, cancel: Callable[[], bool] | None = None,
              keep_parts: bool = False, workers: int = 2, address: str | None = None) -> SweepResult:
    """Run `sweep` over `data` on `executor` ("local", "ray" or an executor object); see the module docstring."""
    owned = isinstance(executor, str)
    runner = make_executor(executor, workers=workers, address=address)
    try:
        return _run(sweep, data, runner, out, shard_size, parts_dir, progress, cancel, keep_parts)
    finally:
        if owned:
            runner.close()


def _run(sweep, data, executor, out, shard_size, parts_dir, progress, cancel, keep_parts) -> SweepResult:
    start = time.perf_counter()
    progress(0.0, "loading the models")
    facts = executor.facts(sweep.model_names())
    sweep.check(data, facts)
    shards = data.shards(shard_size)
    if parts_dir is None and out is not None:
        parts_dir = Path(f"{out}.parts")
    store = PartStore(parts_dir, {"sweep": sweep.kind, "params": sweep.describe(),
                                  "models": {n: f.identity() for n, f in facts.items()},
                                  "data": data.fingerprint(), "shard_size": shard_size})
    done = store.done() & {s.index for s in shards}
    todo = [s for s in shards if s.index not in done]
    computed = 0
    label = getattr(sweep, "label", sweep.kind)
    progress(len(done) / len(shards), f"{label}: {len(done)} of {len(shards)} shards already done" if done
             else f"{label}: 0 of {len(shards)} shards")
    if todo:
        stream = executor.map(sweep, todo)
        try:
            for index, partial in stream:
                store.put(index, partial)
                done.add(index)
                computed += 1
                progress(len(done) / len(shards), f"{label}: {len(done)} of {len(shards)} shards")
                if cancel is not None and cancel() and len(done) < len(shards):
                    raise SweepCancelled(len(done), len(shards))
        finally:
            stream.close()
    partials = store.all([s.index for s in shards])
    sections = sweep.reduce(partials, data, facts)
    meta = {"models": list(sweep.model_names()), "data": data.source, "format": data.format,
            "columns": data.columns.mapped(), "n_rows": len(data), "params": sweep.describe(),
            "shards": len(shards), "shard_size": shard_size, "executor": executor.name,
            "workers": getattr(executor, "workers", 1), "computed_shards": computed,
            "reused_shards": len(shards) - computed, "seconds": time.perf_counter() - start}
    result = SweepResult(kind=sweep.kind, sections=sections, meta=meta)
    if out is not None:
        result.to_parquet(out)
    if not keep_parts:
        store.clear()
    progress(1.0, f"{label}: done")
    return result
