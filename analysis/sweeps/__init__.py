"""Sweeps over whole datasets: evaluate, agreement, slices, head importance, pruning curve, attribution.

Each sweep runs shard by shard on an executor (`local` in this process, or `ray` on a cluster),
stores its finished shards so an interruption resumes, and returns aggregates only:

    from analysis.sweeps import ColumnMap, EvaluateSweep, read_dataset, run_sweep
    data = read_dataset("sample_data/sentiment.csv", ColumnMap(text="text", label="label"))
    result = run_sweep(EvaluateSweep(models=("minilm-sentiment",), slices=("label", "length")), data,
                       executor="local", out="eval.parquet")
    result["metrics"], result["slices"], result["agreement"]

The `workbench sweep ...` command line and the app's Datasets page call these same functions.
"""
from . import _worker_paths  # noqa: F401  (first: a Ray worker imports our packages, not its cwd's)
from .attribution import AttributionSweep
from .data import ColumnMap, Dataset, Shard, read_dataset, read_uploaded, slice_values
from .evaluate import EvaluateSweep, agreement_matrix, classification_metrics, normalize_answer, word_errors
from .executors import EXECUTORS, LocalExecutor, ModelFacts, RayExecutor, check_address, make_executor
from .heads import (HeadImportanceSweep, LossSweep, PruningCurveSpec, importance_from_result, random_spread,
                    sweep_pruning_curve)
from .results import SweepResult, read_result
from .runner import DEFAULT_SHARD_SIZE, SweepCancelled, run_sweep

__all__ = [
    "AttributionSweep", "ColumnMap", "Dataset", "Shard", "read_dataset", "read_uploaded", "slice_values",
    "EvaluateSweep", "agreement_matrix", "classification_metrics", "normalize_answer", "word_errors",
    "EXECUTORS", "LocalExecutor", "ModelFacts", "RayExecutor", "check_address", "make_executor",
    "HeadImportanceSweep", "LossSweep", "PruningCurveSpec", "importance_from_result", "random_spread",
    "sweep_pruning_curve", "SweepResult", "read_result", "DEFAULT_SHARD_SIZE", "SweepCancelled", "run_sweep",
]
