"""How much a model's first call on the Compare page differs from its steady state, per default pipeline.

The Compare page shows the first call's answer and never runs a call only to throw it away. A model
that answers fast is called again and its latency is the median of those repeats; a model that
generates (text generation, speech recognition) is called once and its latency is that first call.
This script checks that choice: each pipeline runs in a fresh process (so the first call is the
process's first use of the model, as on a fresh server), timed exactly as the page times it
(`analysis.compare_report.timed_load` and `timed_run`), but with every model repeated. It prints
load, first call, the steady-state median (and range) and first / steady: near 1.0 means the first
call is a fair latency; well above 1.0 means only the repeats give one.

Rounds repeat the whole measurement in new processes; the medians over rounds are printed.

Run: .venv/bin/python bench/compare_timing.py [--repeats 5] [--rounds 3] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INPUTS = {"text": "I really loved this film, the acting was wonderful.",
          "image": str(ROOT / "sample_data" / "images" / "digit_7.png"),
          "audio": str(ROOT / "sample_data" / "speech" / "clip_02.wav")}


def measure_one(task: str, repeats: int, threads: int | None) -> dict:
    """In this process: load the task's default model, call it once, then ``repeats`` more times."""
    sys.path.insert(0, str(ROOT))
    import torch

    if threads:
        torch.set_num_threads(threads)
    from analysis.compare_report import timed_load, timed_run
    from models import load_model, pipeline
    from models.pipelines import DEFAULT_MODELS, PIPELINES

    source = INPUTS[PIPELINES[task].modality]
    pipe, load_seconds = timed_load(lambda: pipeline(task, load_model(DEFAULT_MODELS[task])))
    _, timing = timed_run(pipe, source, repeats=repeats, budget_seconds=float("inf"), load_seconds=load_seconds)
    return {"model": DEFAULT_MODELS[task], "generates": bool(pipe.model.can_generate),
            "load_ms": 1000 * timing.load_seconds, "first_ms": 1000 * timing.first_seconds,
            "steady_ms": 1000 * timing.steady_seconds, "min_ms": 1000 * min(timing.repeat_seconds),
            "max_ms": 1000 * max(timing.repeat_seconds), "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="calls after the first, per process")
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per pipeline")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own)")
    parser.add_argument("--tasks", nargs="*", default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # internal: measure this task, print JSON
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.repeats, args.threads)))
        return
    sys.path.insert(0, str(ROOT))
    from models.pipelines import DEFAULT_MODELS

    tasks = args.tasks or list(DEFAULT_MODELS)
    print(f"{'task':30s} {'model':18s} {'gen':>4s} {'load ms':>9s} {'first ms':>9s} {'steady ms':>10s} "
          f"{'range ms':>17s} {'first/steady':>13s}")
    for task in tasks:
        runs = []
        for _ in range(args.rounds):
            command = [sys.executable, __file__, "--one", task, "--repeats", str(args.repeats)]
            if args.threads:
                command += ["--threads", str(args.threads)]
            out = subprocess.run(command, capture_output=True, text=True, check=True,
                                 env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": "ignore"})
            runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        med = {k: statistics.median(r[k] for r in runs) for k in ("load_ms", "first_ms", "steady_ms", "min_ms",
                                                                    "max_ms")}
        ratio = statistics.median(r["first_ms"] / r["steady_ms"] for r in runs)
        print(f"{task:30s} {runs[0]['model']:18s} {'yes' if runs[0]['generates'] else 'no':>4s} "
              f"{med['load_ms']:9.1f} {med['first_ms']:9.1f} {med['steady_ms']:10.1f} "
              f"{med['min_ms']:8.1f}-{med['max_ms']:<8.1f} {ratio:13.2f}")
    print(f"(medians over {args.rounds} fresh processes, {args.repeats} calls after the first each, "
          f"torch threads {runs[0]['threads']}; load is load_model from the on-disk cache)")


if __name__ == "__main__":
    main()
