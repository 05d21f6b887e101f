"""`workbench app` starts the app; `workbench sweep head-importance|evaluate|pruning-curve|attribution ...` runs
dataset sweeps from a terminal.

    workbench sweep head-importance --model minilm-sentiment --data sample_data/sentiment.csv \\
        --text-column text --label-column label --executor ray --out heads.parquet
    workbench sweep evaluate --models minilm-sentiment,./my-classifier --data reviews.jsonl \\
        --slice-by label,length --out eval.parquet

Each sweep is a function in `analysis.sweeps`; this module only parses arguments, shows progress
(tqdm, on stderr) and prints a short summary. Shards are stored next to the output as they finish
(`OUT.parquet.parts/`), so after Ctrl-C the same command resumes. Exit codes: 0 done, 2 bad input
(the message says which row and column), 130 interrupted.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Sequence

SWEEPS = ("head-importance", "evaluate", "pruning-curve", "attribution")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="workbench", description="Transformer Workbench from the command line.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("app", help="start the app (streamlit run app/main.py); other options go to streamlit, "
                                    "e.g. --server.port 8600",
                        description="Start the Streamlit app. Options after `app` go to streamlit unchanged.")
    sweep = commands.add_parser("sweep", help="run a sweep over a dataset and write its aggregates to Parquet")
    kinds = sweep.add_subparsers(dest="sweep", required=True, metavar="SWEEP")
    for name, help_text in [("head-importance", "Michel et al. gradient importance of every head, over the dataset"),
                            ("evaluate", "accuracy/macro-F1, perplexity, WER or exact match per model; slices; agreement"),
                            ("pruning-curve", "metric as heads are pruned, least important first, against random orders"),
                            ("attribution", "attribution aggregated per token (mean |a|, with counts)")]:
        sub = kinds.add_parser(name, help=help_text, description=help_text)
        if name == "evaluate":
            sub.add_argument("--models", required=True, type=_csv, help="comma-separated model names or folders")
        else:
            sub.add_argument("--model", required=True, help="an embedded name, a local folder or a hub id")
        data = sub.add_argument_group("data")
        data.add_argument("--data", required=True, help="a .csv, .jsonl, .parquet or .txt file, or a saved datasets folder")
        data.add_argument("--split", help="the split of a saved DatasetDict")
        for role in ("text", "pair", "label", "reference", "image", "audio"):
            data.add_argument(f"--{role}-column", dest=f"{role}_column", metavar="COLUMN",
                              help=f"the column holding the {role}" + (" (paths)" if role in ("image", "audio") else ""))
        data.add_argument("--limit", type=int, help="only the first N rows")
        run = sub.add_argument_group("running")
        run.add_argument("--executor", choices=("local", "ray"), default="local")
        run.add_argument("--address", help="join the Ray cluster at host:port (default: start a local Ray)")
        run.add_argument("--workers", type=int, default=2, help="Ray actors, one model copy each (default 2)")
        run.add_argument("--shard-size", type=int, default=64, help="rows per shard, the unit of resuming (default 64)")
        run.add_argument("--batch-size", type=int, default=16)
        run.add_argument("--max-length", type=int, default=128, help="tokens per example at most")
        run.add_argument("--seed", type=int, default=0, help="masked-LM positions")
        run.add_argument("--out", required=True, help="the result file, OUT.parquet")
        run.add_argument("--keep-parts", action="store_true", help="keep the shard files after the result is written")
        run.add_argument("--quiet", action="store_true", help="no progress bar")
        if name == "evaluate":
            sub.add_argument("--slice-by", type=_csv, default=[], help="label, length and/or column names, comma-separated")
            sub.add_argument("--max-new-tokens", type=int, default=32, help="greedy continuation for exact match")
        if name == "pruning-curve":
            sub.add_argument("--step-fraction", type=float, default=0.1)
            sub.add_argument("--max-fraction", type=float, default=0.9)
            sub.add_argument("--seeds", type=lambda v: [int(s) for s in _csv(v)], default=[0, 1, 2],
                             help="random-order baselines, comma-separated seeds (default 0,1,2)")
        if name == "attribution":
            sub.add_argument("--method", default="input_x_gradient")
            sub.add_argument("--target", choices=("prediction", "label"), default="prediction")
            sub.add_argument("--normalize", action="store_true", help="each example's |scores| sum to 1")
    return parser


class _Bar:
    """A tqdm bar driven by progress(fraction, message)."""

    def __init__(self, quiet: bool) -> None:
        self.bar = None
        if not quiet:
            from tqdm import tqdm
            self.bar = tqdm(total=1000, file=sys.stderr, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining}",
                            dynamic_ncols=True, mininterval=0.1 if sys.stderr.isatty() else 0.0)  # a log keeps every step

    def __call__(self, fraction: float, message: str) -> None:
        if self.bar is None:
            return
        self.bar.set_description_str(message[:60], refresh=False)
        self.bar.update(max(0, round(1000 * min(fraction, 1.0)) - self.bar.n))

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _dataset(args: argparse.Namespace):
    from analysis.sweeps.data import ColumnMap, read_dataset
    given = {role: getattr(args, f"{role}_column") for role in ("text", "pair", "label", "reference", "image", "audio")}
    columns = ColumnMap(**given) if any(given.values()) else None
    data = read_dataset(args.data, columns, split=args.split)
    return data.head(args.limit) if args.limit is not None else data


def run(args: argparse.Namespace) -> Any:
    from analysis.sweeps import (AttributionSweep, EvaluateSweep, HeadImportanceSweep, PruningCurveSpec, run_sweep,
                                 sweep_pruning_curve)
    data = _dataset(args)
    common = dict(batch_size=args.batch_size, max_length=args.max_length, seed=args.seed)
    bar = _Bar(args.quiet)
    running = dict(executor=args.executor, out=args.out, shard_size=args.shard_size, progress=bar,
                   workers=args.workers, address=args.address)
    try:
        if args.sweep == "pruning-curve":
            spec = PruningCurveSpec(model=args.model, step_fraction=args.step_fraction, max_fraction=args.max_fraction,
                                    seeds=tuple(args.seeds), **common)
            return sweep_pruning_curve(spec, data, **running)
        if args.sweep == "head-importance":
            sweep = HeadImportanceSweep(model=args.model, **common)
        elif args.sweep == "evaluate":
            sweep = EvaluateSweep(models=tuple(args.models), slices=tuple(args.slice_by),
                                  max_new_tokens=args.max_new_tokens, **common)
        else:
            sweep = AttributionSweep(model=args.model, method=args.method, target=args.target, normalize=args.normalize)
        return run_sweep(sweep, data, keep_parts=args.keep_parts, **running)
    finally:
        bar.close()


def summary(result: Any, limit: int = 10) -> str:
    """What the terminal shows after a sweep: the main table, shortened."""
    import pandas as pd
    main = {"evaluate": "metrics", "head-importance": "head_importance", "pruning-curve": "curve",
            "attribution": "tokens"}.get(result.kind)
    frame = result[main] if main else next(iter(result.sections.values()))
    if result.kind == "evaluate":
        frame = frame.dropna(axis=1, how="all")
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        return frame.head(limit).to_string(index=False)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    # `workbench app` passes options it does not know to streamlit; every other command rejects them
    args, extra = parser.parse_known_args(argv)
    if args.command == "app":
        from workbench.app_command import run_app
        return run_app(extra)
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    from models.errors import WorkbenchError
    try:
        result = run(args)
    except KeyboardInterrupt:
        print(f"\ninterrupted: finished shards are kept in {args.out}.parts/; run the same command again to resume.",
              file=sys.stderr)
        return 130
    except WorkbenchError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(summary(result))
    meta = result.meta
    reused = f", {meta['reused_shards']} reused" if meta.get("reused_shards") else ""
    shards = f" ({meta['shards']} shards{reused})" if "shards" in meta else ""
    print(f"wrote {args.out}: {result.kind} on {meta.get('n_rows')} rows of {meta.get('data')}{shards}, "
          f"executor {meta.get('executor')}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
