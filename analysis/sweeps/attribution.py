"""Attribution over a dataset, aggregated per token: mean |attribution| and mean signed attribution, with counts.

Each example is explained with `analysis.attribution.attribute_text` (one method, the prediction
or the gold label as target); its special tokens are left out, and with `normalize` each example's
scores are divided by their sum of magnitudes first, so every example weighs the same. A shard
returns one row per distinct token (count, sum |a|, sum a): LIT's issue #416 reports 50 GB for 5k
examples when per-token tensors are kept, and none are here.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.errors import InputError

from ..attribution import METHODS, attribute_text, check_params
from .base import Partial, Sweep, add_up, check_labels, require
from .data import Dataset, Shard
from .executors import ModelFacts, WorkerModels

TARGETS = ("prediction", "label")


@dataclass(frozen=True)
class AttributionSweep(Sweep):
    model: str
    method: str = "input_x_gradient"
    target: str = "prediction"               # explain the predicted class, or the gold label
    normalize: bool = False                  # each example's |scores| sum to 1 before they are added up
    params: tuple[tuple[str, float], ...] = ()  # the method's parameters, e.g. (("n_steps", 32),)
    kind = "attribution"
    label = "attribution"

    def model_names(self) -> tuple[str, ...]:
        return (self.model,)

    def check(self, data: Dataset, facts: dict[str, ModelFacts]) -> None:
        if self.method not in METHODS or "text" not in METHODS[self.method].modalities:
            raise InputError(f"Unknown text attribution method {self.method!r}; choose one of "
                             f"{', '.join(k for k, m in METHODS.items() if 'text' in m.modalities)}.")
        check_params(self.method, dict(self.params))
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {', '.join(TARGETS)}; got {self.target!r}.")
        f = facts[self.model]
        if f.modality != "text":
            raise InputError(f"{self.model} reads {f.modality}; the dataset attribution sweep explains text models.")
        require(data, ("text",), "Attribution")
        if self.target == "label":
            if f.task != "sequence-classification":
                raise InputError(f"Explaining the gold label needs a classifier; {self.model} is {f.task}.")
            require(data, ("label",), "Attribution of the gold label")
            check_labels(data, f)

    def run_shard(self, models: WorkerModels, shard: Shard) -> Partial:
        model = models.get(self.model)
        labels = shard.values("label") if self.target == "label" else [None] * len(shard)
        rows = []
        for text, label in zip(shard.values("text"), labels):
            report = attribute_text(model, str(text), methods=[self.method], target=label,
                                    params={self.method: dict(self.params)} if self.params else None)
            scores = report.results[self.method].scores.double()
            keep = [i for i, special in enumerate(report.special or [False] * len(report.units)) if not special]
            total = float(scores[keep].abs().sum()) if self.normalize else 1.0
            total = total or 1.0
            for i in keep:
                value = float(scores[i]) / total
                rows.append({"token": report.units[i], "count": 1, "abs_sum": abs(value), "signed_sum": value})
        frame = pd.DataFrame(rows, columns=["token", "count", "abs_sum", "signed_sum"])
        tokens = frame.groupby("token", sort=True).sum().reset_index()
        return {"tokens": tokens, "examples": pd.DataFrame([{"examples": len(shard)}])}

    def reduce(self, partials: list[Partial], data: Dataset, facts: dict[str, ModelFacts]) -> dict[str, pd.DataFrame]:
        sums = add_up(partials, "tokens", ["token"], ["count", "abs_sum", "signed_sum"])
        sums["mean_abs"] = sums["abs_sum"] / sums["count"]
        sums["mean_signed"] = sums["signed_sum"] / sums["count"]
        table = sums.sort_values(["mean_abs", "token"], ascending=[False, True], kind="stable").reset_index(drop=True)
        examples = int(sum(int(p["examples"]["examples"].sum()) for p in partials))
        summary = pd.DataFrame([{"model": self.model, "method": self.method, "target": self.target,
                                 "normalize": self.normalize, "n_examples": examples, "n_tokens": int(sums["count"].sum())}])
        return {"tokens": table[["token", "count", "mean_abs", "mean_signed", "abs_sum", "signed_sum"]],
                "summary": summary}
