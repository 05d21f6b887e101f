"""Dataset sweeps: examples per second on the `local` executor and on `ray` with 1 and 2 workers, same machine.

For each sweep (evaluate, head importance) on `--model` over `sample_data/sentiment.csv`:
  local (T threads)   in this process, torch with this machine's threads (the default executor)
  local (1 thread)    the same with torch.set_num_threads(1): the work one Ray worker does
  ray, 1 worker       a local Ray instance, one actor (num_cpus=1, so torch uses one thread)
  ray, 2 workers      two actors, shards streamed to whichever is free
Throughput counts the sweep only (models loaded and actors up beforehand; startup is printed
apart). Ray's overhead is 1 - (ray, 1 worker) / (local, 1 thread): the same arithmetic, plus
pickling shards and partials, the actor call and the driver storing each shard. Each figure is
the median of `--repeats` runs, the configurations interleaved, so noise on this shared 2-core
machine hits them alike. At the end, a reasoned estimate for N machines (see `estimate`).

Run: .venv/bin/python bench/sweep.py [--model minilm-sentiment] [--rows 463] [--repeats 3] [--shard-size 32]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from analysis.sweeps import (ColumnMap, EvaluateSweep, HeadImportanceSweep, LocalExecutor, RayExecutor,  # noqa: E402
                             read_dataset, run_sweep)


def timed(sweep, data, executor, shard_size: int) -> float:
    with tempfile.TemporaryDirectory() as parts:  # stored shards, as a real run keeps them; never reused here
        start = time.perf_counter()
        run_sweep(sweep, data, executor=executor, shard_size=shard_size, parts_dir=parts)
        return time.perf_counter() - start


def driver_cost(data, sweeps: dict, local: LocalExecutor, executor: RayExecutor, shard_size: int,
                rounds: int = 30) -> float:
    """Seconds of driver work per shard, measured part by part (the driver does them one shard at a time):
    an actor call's round trip carrying a shard out and a partial back, and storing and reading the partial."""
    import ray
    from analysis.sweeps.store import PartStore
    shard = data.shards(shard_size)[0]
    partials = [sweep.run_shard(local.models, shard) for sweep in sweeps.values()]
    worst = 0.0
    for partial in partials:
        actor = executor._actors[0]
        echo = ray.put(partial)
        ray.get(actor.pid.remote())
        start = time.perf_counter()
        for _ in range(rounds):
            ray.get([actor.pid.remote(), echo])  # the call's round trip; the partial through the object store
            ray.put(shard)
        call = (time.perf_counter() - start) / rounds
        with tempfile.TemporaryDirectory() as root:
            store = PartStore(root, {"bench": True})
            start = time.perf_counter()
            for i in range(rounds):
                store.put(i, partial)
                store.get(i)
            storing = (time.perf_counter() - start) / rounds
        worst = max(worst, call + storing)
    return worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="minilm-sentiment")
    parser.add_argument("--rows", type=int, default=463)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--shard-size", type=int, default=32)
    parser.add_argument("--sweeps", nargs="+", default=["evaluate", "head-importance"])
    args = parser.parse_args()

    data = read_dataset(ROOT / "sample_data" / "sentiment.csv", ColumnMap(text="text", label="label"))
    data = type(data)(frame=data.frame.head(args.rows), columns=data.columns, source=data.source, format=data.format)
    sweeps = {"evaluate": EvaluateSweep(models=(args.model,)), "head-importance": HeadImportanceSweep(model=args.model)}
    threads = torch.get_num_threads()
    print(f"{len(data)} rows of sentiment.csv, model {args.model}, shard size {args.shard_size}, "
          f"{os.cpu_count()} cores, torch {threads} threads, load average {os.getloadavg()[0]:.1f}")

    import ray
    local = LocalExecutor()
    local.facts([args.model])
    start = time.perf_counter()
    # 3 logical CPUs: the 1-worker and the 2-worker actors all stay up; only the ones in use compute
    ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, object_store_memory=256 * 2 ** 20,
             configure_logging=False)
    ray_start = time.perf_counter() - start
    executors = {}
    startup = {}
    for workers in (1, 2):
        start = time.perf_counter()
        executor = RayExecutor(workers=workers)
        executor.facts([args.model])  # each actor loads the model once
        startup[workers] = time.perf_counter() - start
        executors[workers] = executor
    print(f"startup: ray.init {ray_start:.1f} s; actors up and model loaded: 1 worker {startup[1]:.1f} s, "
          f"2 workers {startup[2]:.1f} s")

    def one_thread(sweep):
        torch.set_num_threads(1)
        try:
            return timed(sweep, data, local, args.shard_size)
        finally:
            torch.set_num_threads(threads)

    results = {}
    for key in args.sweeps:
        sweep = sweeps[key]
        configs = {f"local ({threads} threads)": lambda s=sweep: timed(s, data, local, args.shard_size),
                   "local (1 thread)": lambda s=sweep: one_thread(s),
                   "ray, 1 worker": lambda s=sweep: timed(s, data, executors[1], args.shard_size),
                   "ray, 2 workers": lambda s=sweep: timed(s, data, executors[2], args.shard_size)}
        for fn in configs.values():  # warm-up: first-call costs (tokenizer caches, allocator) out of the figures
            fn()
        samples = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, fn in configs.items():
                samples[name].append(fn())
        seconds = {name: statistics.median(v) for name, v in samples.items()}
        results[key] = {name: len(data) / s for name, s in seconds.items()}
        print(f"\n{key}: examples per second (median of {args.repeats}; seconds in brackets)")
        for name, rate in results[key].items():
            print(f"  {name:<22} {rate:8.1f}  ({seconds[name]:.2f} s)")
        rates = results[key]
        overhead = 1 - rates["ray, 1 worker"] / rates["local (1 thread)"]
        print(f"  ray overhead vs the same work in-process (1 thread): {overhead:+.1%}; "
              f"2 workers / 1 worker: {rates['ray, 2 workers'] / rates['ray, 1 worker']:.2f}x; "
              f"ray 2 workers / local: {rates['ray, 2 workers'] / rates[f'local ({threads} threads)']:.2f}x")

    per_shard = driver_cost(data, {k: sweeps[k] for k in args.sweeps}, local, executors[2], args.shard_size)
    print(f"\ndriver work per shard: {1000 * per_shard:.1f} ms (an actor call with the shard and its partial, "
          "storing and reading the partial's Parquet)")
    estimate(results, per_shard, args.shard_size, startup[2])
    for executor in executors.values():
        executor.close()
    ray.shutdown()


def estimate(results: dict, per_shard: float, shard_size: int, startup: float) -> None:
    """N machines of this kind, C cores each, one worker per core: throughput ~ N x C x r1 x e, where r1 is one
    worker's rate measured here and e the parallel efficiency measured from 1 to 2 workers on one machine
    (it includes memory-bandwidth sharing; across machines nothing is shared but the network, and a shard's
    text and partial are a few kB). The driver caps it: it handles one shard per `per_shard` seconds, so at
    most shard_size / per_shard examples per second, whatever N."""
    cores = os.cpu_count() or 2
    print("\nestimate for N machines like this one (one Ray worker per core):")
    for key, rates in results.items():
        r1 = rates["ray, 1 worker"]
        efficiency = min(1.0, rates["ray, 2 workers"] / (2 * r1))
        cap = shard_size / per_shard
        line = ", ".join(f"N={n}: {min(n * cores * r1 * efficiency, cap):,.0f}/s" for n in (1, 4, 16, 64))
        print(f"  {key}: one worker {r1:.1f}/s, efficiency {efficiency:.2f}, driver cap {cap:,.0f}/s -> {line}")
    print(f"  the cap grows with the shard size (x{256 // shard_size} at --shard-size 256); plus a one-time start of "
          f"about {startup:.0f} s (actors up, one model load per worker, in parallel).")


if __name__ == "__main__":
    main()
