"""`attribute_image`: the tensor methods wired to a ViT-type image classifier of the core.

Pixels are attributed in the model's input space (after resize and normalisation), from the
baseline of a black image passed through the same processor. Rollout and attention x gradient
read the [CLS] row and spread each patch's score over its pixels.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
from PIL import Image

from models.errors import InputError

from .attention_grads import patterns_and_gradients
from .methods import DEFAULT_METHODS
from .result import AttributionReport, Progress, Target, no_progress
from .tensor import attribute_tensor
from .tensor_methods import AttentionMap, TensorInput


def attribute_image(model, image: Any, methods: Sequence[str] = DEFAULT_METHODS, target: int | str | None = None,
                    params: dict[str, dict[str, Any]] | None = None, progress: Progress = no_progress) -> AttributionReport:
    """Explain class `target` (None: the prediction) of an image classifier on one image (PIL, array or path)."""
    if model.modality != "image":
        raise InputError(f"{model.name or 'This model'} does not read images; choose an image classifier.")
    if model.task != "image-classification":
        raise InputError(f"{model.name or 'This model'} has no classification head, so there is no decision to explain.")
    prepared = model.prepare(images=[image])
    values = prepared.inputs["pixel_values"].detach()  # (1, 3, H, W)
    original = prepared.extras["images"][0]
    baseline = model.processor([Image.new("RGB", original.size)]).detach()  # (1, 3, H, W): black, normalised
    rows, cols = prepared.extras["grid"]
    first = int(prepared.extras.get("first_patch", 1))  # patches start after [CLS] (and DeiT's distillation token)
    ph, pw = prepared.extras["patch_size"] if isinstance(prepared.extras["patch_size"], tuple) else (prepared.extras["patch_size"],) * 2

    def forward(x: torch.Tensor) -> torch.Tensor:
        return model.forward(pixel_values=x, capture=False).logits  # (B, n_classes)

    def read(x: torch.Tensor, chosen: Target, with_gradients: bool):
        run = lambda: model.forward(pixel_values=x, capture=True).logits[0, chosen.index]
        return patterns_and_gradients(model, run, with_gradients=with_gradients)

    def to_units(row: torch.Tensor) -> torch.Tensor:  # (first + N,) -> (H, W): each patch's score on its pixels
        grid = row[first: first + rows * cols].reshape(rows, cols)
        return grid.repeat_interleave(ph, dim=0).repeat_interleave(pw, dim=1)

    params = dict(params or {})
    # one occluded patch at a time by default: single pixels would take H x W forward passes
    params["occlusion"] = {"window": ph, "stride": ph, **params.get("occlusion", {})}
    x = TensorInput(values=values, baseline=baseline, unit_dims=2, attention=AttentionMap(read, 0, to_units))
    shown = np.asarray(original.convert("RGB").resize((values.shape[-1], values.shape[-2])))
    methods = list(methods)
    used = {k: v for k, v in params.items() if k in methods}
    return attribute_tensor(forward, x, methods=methods, target=target, labels=model.labels, params=used,
                            modality="image", model_name=model.name, progress=progress,
                            description=str(prepared.extras["sources"][0]), extras={"image": shown})
