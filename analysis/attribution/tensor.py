"""`attribute_tensor`: several methods on one image or audio input, as one report."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from models.errors import InputError

from .methods import DEFAULT_METHODS, check_params, method_spec
from .result import AttributionReport, Progress, no_progress
from .targets import OutputNames, resolve_target
from .tensor_methods import TENSOR_METHODS, TensorForward, TensorInput


def attribute_tensor(forward: TensorForward, x: TensorInput, methods: Sequence[str] = DEFAULT_METHODS,
                     target: int | str | None = None, labels: dict[int, str] | None = None,
                     params: dict[str, dict[str, Any]] | None = None, modality: str = "image",
                     model_name: str = "", description: str = "", unit_seconds: float | None = None,
                     extras: dict[str, object] | None = None, progress: Progress = no_progress) -> AttributionReport:
    """Explain output `target` (None: the prediction) of `forward` on `x.values` with each method.

    `forward` maps (B, ...) to (B, n_outputs) scores; `labels` names the outputs.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise InputError("Choose at least one attribution method.")
    for key in list(methods) + list(params or {}):
        method_spec(key, modality)
    checked = {key: check_params(key, (params or {}).get(key)) for key in methods}
    _check_input(x)
    with torch.no_grad():
        scores = forward(x.values)
    if scores.dim() != 2 or scores.shape[0] != 1:
        raise InputError(f"The forward function must return (1, n_outputs) scores; got {tuple(scores.shape)}.")
    chosen = resolve_target(scores[0], target, OutputNames.classes(labels))
    results = {}
    for i, key in enumerate(methods):
        def step(fraction: float, message: str, i: int = i) -> None:
            progress((i + fraction) / len(methods), message)
        step(0.0, method_spec(key).label)
        results[key] = TENSOR_METHODS[key](forward, x, chosen, progress=step, **checked[key])
    progress(1.0, "done")
    units = [str(n) for n in x.values.shape[-x.unit_dims:]]
    return AttributionReport(modality=modality, units=units, target=chosen, results=results, model_name=model_name,
                             input_text=description, unit_seconds=unit_seconds, extras=dict(extras or {}))


def _check_input(x: TensorInput) -> None:
    if x.values.numel() == 0:
        raise InputError("Empty input: the image or clip has no samples.")
    if x.values.dim() < x.unit_dims + 1 or x.values.shape[0] != 1:
        raise InputError(f"Give one input with a batch axis of 1, e.g. (1, C, H, W); got {tuple(x.values.shape)}.")
    if x.baseline.shape != x.values.shape:
        raise InputError(f"The baseline {tuple(x.baseline.shape)} must have the input's shape {tuple(x.values.shape)}.")
    if not torch.isfinite(x.values).all():
        raise InputError("The input contains NaN or infinite values.")
