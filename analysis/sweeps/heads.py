"""Head importance and the pruning curve over a whole dataset, on any executor.

Head importance is Michel, Levy & Neubig 2019's gradient score, I_h = E_x |dL(x)/dxi_h|, which is
itself an average over a dataset. Each shard runs `analysis.head_importance.compute_gradient_importance`
(unnormalised) and contributes its sum, mean x examples; the dataset score is the total over
the number of examples, i.e. the example-weighted mean of the per-batch scores, then l2-normalised
per layer (§4.2) as the in-memory function does.

The pruning curve (§4.3) repeats, step by step: score the heads on the model pruned so far
(a dataset sweep), remove the least important `step_fraction` of the original heads, measure
loss and accuracy (another sweep). The baseline prunes the same number of heads per step in a
random order, once per seed, and the spread over seeds (mean, std, min, max) is reported. Each
inner sweep stores its shards, so an interrupted curve resumes where it stopped.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd
import torch

from models.errors import InputError

from ..head_importance import HeadImportance, compute_gradient_importance, normalize_per_layer
from ..metrics import SUPPORTED_TASKS, batch_scores, make_eval_set
from .base import Partial, Sweep, add_up, check_labels, require
from .data import Dataset, Shard
from .executors import ModelFacts, WorkerModels, make_executor
from .results import SweepResult
from .runner import DEFAULT_SHARD_SIZE, Progress, no_progress, run_sweep

PrunedSpec = tuple[tuple[int, tuple[int, ...]], ...]  # ((layer, (heads...)), ...) sorted: hashable, picklable


def pruned_spec(heads: dict[int, list[int]]) -> PrunedSpec:
    return tuple((int(layer), tuple(sorted(int(h) for h in hs))) for layer, hs in sorted(heads.items()) if hs)


def _model_for(models: WorkerModels, name: str, pruned: PrunedSpec) -> Any:
    if not pruned:
        return models.get(name)
    def prune(model: Any) -> Any:
        with torch.inference_mode(False), torch.no_grad():  # plain tensors: a later importance sweep takes gradients
            return model.prune_heads({layer: list(hs) for layer, hs in pruned})
    return models.derived(name, pruned, prune)


@dataclass(frozen=True)
class _LossSweep(Sweep):
    """What the head sweeps share: one model, its loss on the text (and labels, for a classifier)."""
    model: str
    pruned: PrunedSpec = ()
    batch_size: int = 16
    max_length: int = 128
    mask_fraction: float = 0.15
    seed: int = 0

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def check(self, data: Dataset, facts: dict[str, ModelFacts]) -> None:
        f = facts[self.model]
        if f.modality != "text" or f.task not in SUPPORTED_TASKS:
            raise InputError(f"{self.model} ({f.modality}, {f.task or 'no task head'}) has no loss to score heads by; "
                             f"head importance needs a text model with one of: {', '.join(SUPPORTED_TASKS)}.")
        require(data, ("text",), f"Scoring {self.model}'s heads")
        if f.task == "sequence-classification":
            require(data, ("label",), f"Scoring the classifier {self.model}'s heads")
            check_labels(data, f)

    def eval_set(self, model: Any, shard: Shard):
        labels = shard.values("label") if model.task == "sequence-classification" else None
        return make_eval_set(model, [str(t) for t in shard.values("text")], labels, batch_size=self.batch_size,
                             max_length=self.max_length, mask_fraction=self.mask_fraction, seed=self.seed + shard.index)


@dataclass(frozen=True)
class HeadImportanceSweep(_LossSweep):
    kind = "head-importance"
    label = "head importance"

    def run_shard(self, models: WorkerModels, shard: Shard) -> Partial:
        model = _model_for(models, self.model, self.pruned)
        data = self.eval_set(model, shard)
        if not any(batch_scored(model, b) > 0 for b in data.batches):  # too short to score: contributes nothing
            return {"heads": pd.DataFrame(columns=["layer", "head", "raw_sum", "examples"])}
        scores = compute_gradient_importance(model, data, normalize=False)
        raw = scores.details["raw"]  # (n_layers, n_heads) mean over this shard's scored examples
        rows = [{"layer": layer, "head": head, "raw_sum": float(raw[layer, head]) * scores.n_examples,
                 "examples": scores.n_examples} for layer, head in scores.present.nonzero().tolist()]
        return {"heads": pd.DataFrame(rows, columns=["layer", "head", "raw_sum", "examples"])}

    def reduce(self, partials: list[Partial], data: Dataset, facts: dict[str, ModelFacts]) -> dict[str, pd.DataFrame]:
        importance = self.importance(partials, facts[self.model])
        frame = importance.to_frame()
        summary = pd.DataFrame([{"model": self.model, "method": "gradient", "metric": "loss",
                                 "n_examples": importance.n_examples, "n_layers": importance.scores.shape[0],
                                 "n_heads": importance.scores.shape[1]}])
        return {"head_importance": frame, "summary": summary}

    def importance(self, partials: list[Partial], facts: ModelFacts) -> HeadImportance:
        sums = add_up(partials, "heads", ["layer", "head"], ["raw_sum", "examples"])
        if sums.empty or int(sums["examples"].max()) == 0:
            raise InputError("Nothing to score: every example is too short (a causal LM needs at least two tokens).")
        raw = torch.full((facts.n_layers, facts.n_heads), float("nan"), dtype=torch.float64)
        for layer, head, total, examples in sums[["layer", "head", "raw_sum", "examples"]].itertuples(index=False):
            raw[int(layer), int(head)] = total / examples
        return HeadImportance(method="gradient", scores=normalize_per_layer(raw), metric="loss",
                              n_examples=int(sums["examples"].max()), details={"raw": raw})


def batch_scored(model: Any, batch) -> int:
    """How many positions of a batch are scored (0: nothing for the loss to see)."""
    targets = batch.targets
    if targets.dim() == 1:
        return int(targets.numel())
    if model.task == "causal-lm":
        targets = targets[:, 1:]
    return int((targets != -100).sum())


def importance_from_result(result: SweepResult) -> HeadImportance:
    """The HeadImportance of a head-importance result (e.g. one read back from Parquet)."""
    summary = result["summary"].iloc[0]
    frame = result["head_importance"]
    scores = torch.full((int(summary["n_layers"]), int(summary["n_heads"])), float("nan"), dtype=torch.float64)
    raw = scores.clone()
    for row in frame.itertuples(index=False):
        scores[int(row.layer), int(row.head)] = float(row.score)
        raw[int(row.layer), int(row.head)] = float(row.raw)
    return HeadImportance(method="gradient", scores=scores, metric="loss", n_examples=int(summary["n_examples"]),
                          details={"raw": raw})


@dataclass(frozen=True)
class LossSweep(_LossSweep):
    """Loss and accuracy as `analysis.metrics.evaluate` defines them, on the model with `pruned` heads removed."""
    kind = "loss"
    label = "loss"

    def run_shard(self, models: WorkerModels, shard: Shard) -> Partial:
        model = _model_for(models, self.model, self.pruned)
        loss_sum = correct = scored = 0.0
        counted = 0
        for batch in self.eval_set(model, shard).batches:
            with torch.no_grad():
                scores = batch_scores(model, batch)
            mask = scores.scored > 0
            loss_sum += float(scores.loss[mask].double().sum())
            counted += int(mask.sum())
            correct += float(scores.correct.double().sum())
            scored += float(scores.scored.double().sum())
        return {"loss": pd.DataFrame([{"loss_sum": loss_sum, "counted": counted, "correct": correct, "scored": scored}])}

    def reduce(self, partials: list[Partial], data: Dataset, facts: dict[str, ModelFacts]) -> dict[str, pd.DataFrame]:
        total = pd.concat([p["loss"] for p in partials], ignore_index=True).sum()
        if total["counted"] == 0:
            raise InputError("Nothing to score: every example is too short (a causal LM needs at least two tokens).")
        return {"evaluation": pd.DataFrame([{"loss": total["loss_sum"] / total["counted"],
                                             "accuracy": total["correct"] / total["scored"],
                                             "n_examples": int(total["counted"])}])}


# ---------------------------------------------------------------- the pruning curve

@dataclass(frozen=True)
class PruningCurveSpec:
    model: str
    step_fraction: float = 0.1
    max_fraction: float = 0.9
    seeds: tuple[int, ...] = (0, 1, 2)     # random-order baselines
    batch_size: int = 16
    max_length: int = 128
    mask_fraction: float = 0.15
    seed: int = 0                           # masked-LM positions

    def schedule(self, facts: ModelFacts) -> tuple[int, int, int]:
        """(total heads, heads per step, steps), as `analysis.pruning_curve.compute_pruning_curve` plans them."""
        if not 0.0 < self.step_fraction <= 1.0 or not 0.0 < self.max_fraction <= 1.0:
            raise InputError("step_fraction and max_fraction must lie in (0, 1], e.g. 0.1 and 0.9.")
        total = sum(len(ids) for ids in facts.head_ids)
        per_step = max(1, round(self.step_fraction * total))
        limit = min(int(self.max_fraction * total + 1e-9), total - 1)
        steps = limit // per_step
        if steps == 0:
            raise InputError(f"With {total} heads, pruning {per_step} per step up to {self.max_fraction:.0%} leaves "
                             "no step; raise max_fraction.")
        return total, per_step, steps


CURVE_COLUMNS = ["order", "seed", "step", "heads_pruned", "fraction_pruned", "heads_left", "loss", "accuracy",
                 "pruned_now"]


def sweep_pruning_curve(spec: PruningCurveSpec, data: Dataset, executor: str | Any = "local",
                        out: str | Path | None = None, shard_size: int = DEFAULT_SHARD_SIZE,
                        parts_dir: str | Path | None = None, progress: Progress = no_progress,
                        cancel: Callable[[], bool] | None = None, workers: int = 2,
                        address: str | None = None) -> SweepResult:
    """The pruning curve of `spec.model` on `data`, least important heads first, against random orders."""
    owned = isinstance(executor, str)
    runner = make_executor(executor, workers=workers, address=address)
    try:
        facts = runner.facts([spec.model])[spec.model]
        total, per_step, n_steps = spec.schedule(facts)
        if parts_dir is None and out is not None:
            parts_dir = Path(f"{out}.parts")
        common = dict(model=spec.model, batch_size=spec.batch_size, max_length=spec.max_length,
                      mask_fraction=spec.mask_fraction, seed=spec.seed)
        n_runs = (n_steps + 1) + n_steps + n_steps * len(spec.seeds)
        state = {"run": 0, "computed": 0, "reused": 0}

        def sweep(s: Sweep) -> SweepResult:
            i = state["run"]
            report = lambda f, m: progress((i + f) / n_runs, f"run {i + 1} of {n_runs}: {m}")
            result = run_sweep(s, data, runner, shard_size=shard_size, parts_dir=parts_dir, progress=report,
                               cancel=cancel, keep_parts=parts_dir is not None)
            state["run"] += 1
            state["computed"] += result.meta["computed_shards"]
            state["reused"] += result.meta["reused_shards"]
            return result

        def row(order: str, seed: int, step: int, removed: dict[int, list[int]], now: dict[int, list[int]]) -> dict:
            evaluation = sweep(LossSweep(pruned=pruned_spec(removed), **common))["evaluation"].iloc[0]
            count = sum(len(h) for h in removed.values())
            return {"order": order, "seed": seed, "step": step, "heads_pruned": count, "fraction_pruned": count / total,
                    "heads_left": total - count, "loss": float(evaluation["loss"]),
                    "accuracy": float(evaluation["accuracy"]),
                    "pruned_now": ", ".join(f"{l}.{h}" for l, hs in sorted(now.items()) for h in hs)}

        rows = []
        removed: dict[int, list[int]] = {}
        rows.append(row("importance", -1, 0, removed, {}))
        for step in range(1, n_steps + 1):
            importance = importance_from_result(sweep(HeadImportanceSweep(pruned=pruned_spec(removed), **common)))
            chosen = importance.least_important(per_step)
            for layer, heads in chosen.items():
                removed[layer] = sorted(set(removed.get(layer, [])) | set(heads))
            rows.append(row("importance", -1, step, dict(removed), chosen))
        every = [(layer, head) for layer, ids in enumerate(facts.head_ids) for head in ids]
        for seed in spec.seeds:
            order = torch.randperm(len(every), generator=torch.Generator().manual_seed(seed)).tolist()
            rows.append({**rows[0], "order": "random", "seed": seed})
            for step in range(1, n_steps + 1):
                picked: dict[int, list[int]] = {}
                for i in order[:step * per_step]:
                    picked.setdefault(every[i][0], []).append(every[i][1])
                now = {}
                for i in order[(step - 1) * per_step:step * per_step]:
                    now.setdefault(every[i][0], []).append(every[i][1])
                rows.append(row("random", seed, step, {l: sorted(h) for l, h in picked.items()}, now))
        curve = pd.DataFrame(rows, columns=CURVE_COLUMNS)
        sections = {"curve": curve, "random_spread": random_spread(curve)}
        meta = {"models": [spec.model], "data": data.source, "format": data.format, "columns": data.columns.mapped(),
                "n_rows": len(data), "params": {k: v for k, v in spec.__dict__.items()}, "shard_size": shard_size,
                "executor": runner.name, "workers": getattr(runner, "workers", 1), "heads_per_step": per_step,
                "steps": n_steps, "sweeps": n_runs, "computed_shards": state["computed"],
                "reused_shards": state["reused"]}
        result = SweepResult(kind="pruning-curve", sections=sections, meta=meta)
        if out is not None:
            result.to_parquet(out)
        if parts_dir is not None and out is not None:
            import shutil
            shutil.rmtree(parts_dir, ignore_errors=True)
        progress(1.0, "pruning curve: done")
        return result
    finally:
        if owned:
            runner.close()


def random_spread(curve: pd.DataFrame) -> pd.DataFrame:
    """Per step of the random-order baseline: mean, std (ddof 0), min and max of loss and accuracy over seeds."""
    random = curve[curve["order"] == "random"]
    if random.empty:
        return pd.DataFrame(columns=["step", "fraction_pruned", "seeds"])
    grouped = random.groupby(["step", "fraction_pruned"])
    frame = grouped.size().rename("seeds").reset_index()
    for metric in ("loss", "accuracy"):
        stats = grouped[metric].agg(["mean", lambda s: float(s.std(ddof=0)), "min", "max"]).reset_index(drop=True)
        stats.columns = [f"{metric}_{n}" for n in ("mean", "std", "min", "max")]
        frame = pd.concat([frame, stats], axis=1)
    return frame
