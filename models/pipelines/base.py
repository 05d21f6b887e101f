"""What every task pipeline shares: model resolution, results that carry their trace, timing.

A result has exactly the shape transformers' pipeline returns (a dict, or a list of dicts), so it
compares equal to it; the trace and the wall-clock time ride along as attributes, `result.trace`
and `result.seconds`, which an equality check or a JSON dump never sees.
"""
from __future__ import annotations

import inspect
import time
from typing import Any

import torch

from ..errors import InputError
from ..workbench_model import WorkbenchModel


class ResultList(list):
    """A list result with `.trace` (the run behind it) and `.seconds` (its wall-clock time)."""
    trace: Any = None
    seconds: float = 0.0


class ResultDict(dict):
    """A dict result with `.trace` and `.seconds`."""
    trace: Any = None
    seconds: float = 0.0


def with_trace(result: Any, trace: Any, seconds: float) -> Any:
    wrapped = ResultDict(result) if isinstance(result, dict) else ResultList(result)
    wrapped.trace, wrapped.seconds = trace, seconds
    return wrapped


class Pipeline:
    """`pipeline(task, model)(inputs)`: one input gives one result, a list gives a list of results."""
    task: str = ""
    tasks_served: tuple[str | None, ...] = ()    # model.task values this pipeline runs on
    modality: str = "text"

    def __init__(self, model: WorkbenchModel, **defaults: Any) -> None:
        self.model = model
        self.defaults = defaults
        self.check_model()

    def check_model(self) -> None:
        if self.model.modality != self.modality:
            raise InputError(f"{self.task} needs a {self.modality} model; {self.model.display_name} reads "
                             f"{self.model.modality}.")
        if self.tasks_served and self.model.task not in self.tasks_served:
            raise InputError(f"{self.task} needs a model with a {' or '.join(str(t) for t in self.tasks_served)} head; "
                             f"{self.model.name} has {self.model.task or 'no task head'}.")

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        params = {**self.defaults, **kwargs}
        if isinstance(inputs, list):
            return [self._timed(one, params) for one in inputs]
        return self._timed(inputs, params)

    def options(self) -> list[str]:
        """The keyword options this pipeline implements: its `run_one` parameters after the input."""
        return list(inspect.signature(self.run_one).parameters)[1:]

    def _timed(self, one: Any, params: dict) -> Any:
        unknown = sorted(set(params) - set(self.options()))
        if unknown:  # never ignored: transformers' option of that name would change the answer
            raise InputError(f"{self.task} does not implement {', '.join(map(repr, unknown))}. Its options: "
                             f"{', '.join(self.options()) or 'none'}.")
        start = time.perf_counter()
        result, trace = self.run_one(one, **params)
        return with_trace(result, trace, time.perf_counter() - start)

    def run_one(self, one: Any, **params: Any) -> tuple[Any, Any]:  # pragma: no cover - abstract
        raise NotImplementedError


def top_labels(scores: torch.Tensor, labels: dict[int, str], top_k: int | None) -> list[dict[str, Any]]:
    """[{"label", "score"}] sorted by score, best first (transformers' classification pipelines)."""
    k = scores.shape[-1] if top_k is None else min(top_k, scores.shape[-1])
    values, indices = scores.topk(k)
    return [{"label": labels.get(int(i), f"LABEL_{int(i)}"), "score": float(v)} for v, i in zip(values, indices)]


def classification_scores(logits: torch.Tensor, problem_type: str | None) -> torch.Tensor:
    """softmax over labels, or sigmoid for one label or multi-label models (transformers' default)."""
    if logits.shape[-1] == 1 or problem_type == "multi_label_classification":
        return logits.float().sigmoid()
    return logits.float().softmax(-1)


PIPELINES: dict[str, type[Pipeline]] = {}


def register_pipeline(cls: type[Pipeline]) -> type[Pipeline]:
    PIPELINES[cls.task] = cls
    return cls
