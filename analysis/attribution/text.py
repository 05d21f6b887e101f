"""`attribute_text`: several attribution methods on one text and one target, as one report."""
from __future__ import annotations

from typing import Any, Sequence

import torch

from models.errors import InputError
from models.tokenization import TextInput
from models.workbench_model import WorkbenchModel

from .methods import DEFAULT_METHODS, check_params, method_spec
from .result import AttributionReport, Progress, no_progress
from .targets import resolve_target
from .text_inputs import TextForward, encode_for_attribution, output_names
from .text_methods import TEXT_METHODS


def attribute_text(model: WorkbenchModel, text: TextInput, methods: Sequence[str] = DEFAULT_METHODS,
                   target: int | str | None = None, params: dict[str, dict[str, Any]] | None = None,
                   progress: Progress = no_progress) -> AttributionReport:
    """Explain one output of `model` on `text` with each method in `methods`.

    `target` is the class (index or label) for classifiers, or the next token (id or token text)
    for causal language models; None explains the prediction. `params` maps a method key to its
    parameters (see `METHODS[key].params`). `progress(fraction, message)` is called as methods run.
    """
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise InputError("Choose at least one attribution method.")
    params = params or {}
    for key in params:
        method_spec(key, "text")
    checked = {key: check_params(key, params.get(key)) for key in methods}
    for key in methods:
        method_spec(key, "text")
    inputs = encode_for_attribution(model, text)
    fwd = TextForward(model, inputs)
    with torch.no_grad():
        scores = fwd.from_ids(inputs.input_ids, *fwd.args())[0]  # (n_outputs,)
    chosen = resolve_target(scores, target, output_names(model, inputs), inputs.position)
    results = {}
    for i, key in enumerate(methods):
        def step(fraction: float, message: str, i: int = i) -> None:
            progress((i + fraction) / len(methods), message)
        step(0.0, method_spec(key).label)
        results[key] = TEXT_METHODS[key](fwd, chosen, progress=step, **checked[key])
    progress(1.0, "done")
    return AttributionReport(modality="text", units=list(inputs.tokens), target=chosen, results=results,
                             model_name=model.name, input_text=inputs.text, special=list(inputs.special))
