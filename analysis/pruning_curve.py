"""Iterative head pruning and the metric after each step (Michel, Levy & Neubig 2019, §4.3 and Fig. 3).

At each step the heads are scored on the model pruned so far, the least important share
(10% of the original heads by default) is removed for real (`prune_heads`, a new model each
step, the caller's model untouched), and the metric is measured again. Scores come from the
gradient method by default, normalised per layer and compared across layers, as in the paper;
leave-one-out ablation can be used instead. Michel et al. score heads on training data and
evaluate on held-out data: pass `score_data` and `data` separately for that.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.errors import InputError
from models.workbench_model import WorkbenchModel

from .head_importance import METHODS, Progress, no_progress
from .metrics import METRICS, EvalSet, evaluate

CURVE_METHODS = ("gradient", "ablation")  # scores that rank heads by what the model loses


@dataclass(frozen=True)
class PruningCurve:
    table: pd.DataFrame                       # one row per step: step, heads_pruned, fraction_pruned, heads_left,
                                              # loss, accuracy, parameters, pruned_now
    pruned: tuple[dict[int, list[int]], ...]  # heads removed so far after each step (original numbers)
    method: str
    metric: str                               # the metric the curve shows

    def curve(self) -> tuple[list[float], list[float]]:
        """(fraction of heads pruned, metric) for each step, step 0 being the unpruned model."""
        return self.table["fraction_pruned"].tolist(), self.table[self.metric].tolist()


def compute_pruning_curve(model: WorkbenchModel, data: EvalSet, score_data: EvalSet | None = None,
                          step_fraction: float = 0.1, max_fraction: float = 0.9, method: str = "gradient",
                          metric: str = "loss", progress: Progress = no_progress) -> PruningCurve:
    """Prune `step_fraction` of the heads per step, least important first, up to `max_fraction`; measure each step.

    Every step keeps at least one head in the model (pruning all of them is not a model).
    `progress(fraction, message)` is called as steps run.
    """
    if method not in CURVE_METHODS:
        raise InputError(f"A pruning curve ranks heads with {' or '.join(CURVE_METHODS)}; got {method!r}.")
    if metric not in METRICS:
        raise InputError(f"Metric {metric!r} is unknown; choose one of {', '.join(METRICS)}.")
    if not 0.0 < step_fraction <= 1.0 or not 0.0 < max_fraction <= 1.0:
        raise InputError("step_fraction and max_fraction must lie in (0, 1], e.g. 0.1 and 0.9.")
    score_data = score_data or data
    total = sum(len(ids) for ids in model.head_ids())
    per_step = max(1, round(step_fraction * total))
    limit = min(int(max_fraction * total + 1e-9), total - 1)  # never every head
    n_steps = limit // per_step
    if n_steps == 0:
        raise InputError(f"With {total} heads, pruning {per_step} per step up to {max_fraction:.0%} leaves no step; "
                         "raise max_fraction.")

    current, removed = model, {}
    rows = [_row(0, current, data, removed, total, {})]
    history: list[dict[int, list[int]]] = [{}]
    for step in range(1, n_steps + 1):
        share = 1.0 / n_steps
        report = lambda f, m, step=step: progress((step - 1 + f * 0.9) * share, f"step {step} of {n_steps}: {m}")
        scores = METHODS[method].compute(current, score_data, progress=report, **({"metric": metric} if method == "ablation" else {}))
        chosen = scores.least_important(per_step)
        current = current.prune_heads(chosen)
        for layer, heads in chosen.items():
            removed[layer] = sorted(set(removed.get(layer, [])) | set(heads))
        progress((step - 0.1) * share, f"step {step} of {n_steps}: evaluating")
        rows.append(_row(step, current, data, removed, total, chosen))
        history.append({layer: list(removed[layer]) for layer in sorted(removed)})
    progress(1.0, "pruning curve: done")
    return PruningCurve(table=pd.DataFrame(rows), pruned=tuple(history), method=method, metric=metric)


def _row(step: int, model: WorkbenchModel, data: EvalSet, removed: dict[int, list[int]], total: int,
         chosen: dict[int, list[int]]) -> dict:
    result = evaluate(model, data)
    count = sum(len(h) for h in removed.values())
    return {"step": step, "heads_pruned": count, "fraction_pruned": count / total, "heads_left": total - count,
            "loss": result.loss, "accuracy": result.accuracy, "parameters": model.num_parameters(),
            "pruned_now": ", ".join(f"{layer}.{head}" for layer, heads in sorted(chosen.items()) for head in heads)}
