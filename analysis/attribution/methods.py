"""The attribution methods the workbench offers, each declaring its parameters (as LIT's `config_spec`).

The app builds its widgets from these declarations; `check_params` is where analysis ends and
input from a person begins, so every out-of-range value gets a message that says the range.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.errors import InputError


@dataclass(frozen=True)
class ParamSpec:
    name: str
    kind: type                 # int or float
    default: Any
    minimum: Any
    maximum: Any
    help: str


@dataclass(frozen=True)
class MethodSpec:
    key: str
    label: str
    reference: str             # where the method comes from
    summary: str               # one line a person reads next to the checkbox
    signed: bool               # False: the scores are magnitudes, never negative
    slow: bool                 # worth a progress bar
    modalities: tuple[str, ...]
    params: tuple[ParamSpec, ...] = field(default_factory=tuple)


STEPS = ParamSpec("n_steps", int, 50, 2, 400, "Steps of the path integral to start with; doubled while the "
                  "completeness gap is above 5% of F(input) - F(baseline).")
MAX_STEPS = ParamSpec("max_steps", int, 400, 2, 1600, "The most steps integrated gradients may raise itself to.")

METHODS: dict[str, MethodSpec] = {spec.key: spec for spec in [
    MethodSpec("integrated_gradients", "Integrated gradients", "Sundararajan, Taly & Yan 2017",
               "Gradients along the path from a baseline (padding, black, silence) to the input; they add up to "
               "F(input) - F(baseline).", signed=True, slow=True, modalities=("text", "image", "audio"),
               params=(STEPS, MAX_STEPS)),
    MethodSpec("saliency", "Saliency", "Simonyan, Vedaldi & Zisserman 2014",
               "Size of the gradient of the target score at the input.", signed=False, slow=False,
               modalities=("text", "image", "audio")),
    MethodSpec("input_x_gradient", "Input x gradient", "Shrikumar et al. 2016",
               "The input times the gradient: a first-order estimate of each feature's contribution.",
               signed=True, slow=False, modalities=("text", "image", "audio")),
    MethodSpec("occlusion", "Occlusion", "Zeiler & Fergus 2014",
               "How much the target score drops when a window of the input is replaced by the baseline.",
               signed=True, slow=True, modalities=("text", "image", "audio"),
               params=(ParamSpec("window", int, 1, 1, 64, "Width of the occluded window: tokens for text, "
                                 "pixels (square) for images, frames for audio."),
                       ParamSpec("stride", int, 1, 1, 64, "How far the window moves between evaluations."))),
    MethodSpec("attention_rollout", "Attention rollout", "Abnar & Zuidema 2020",
               "Head-averaged attention with the residual mixed in, multiplied through the layers: how much "
               "each token flows into the deciding position.", signed=False, slow=False,
               modalities=("text", "image", "audio"),
               params=(ParamSpec("residual_weight", float, 0.5, 0.0, 1.0, "Share of the identity mixed into each "
                                 "layer's attention for the residual connection."),)),
    MethodSpec("attention_x_gradient", "Attention x gradient", "Chefer, Gur & Wolf 2021",
               "Attention weighted by its gradient, positive part averaged over heads and accumulated through "
               "the layers.", signed=False, slow=False, modalities=("text", "image", "audio")),
]}

DEFAULT_METHODS = ("integrated_gradients", "input_x_gradient", "occlusion", "attention_rollout")


def method_spec(key: str, modality: str | None = None) -> MethodSpec:
    if key not in METHODS:
        raise InputError(f"Unknown attribution method {key!r}. Methods: {', '.join(METHODS)}.")
    spec = METHODS[key]
    if modality is not None and modality not in spec.modalities:
        raise InputError(f"{spec.label} does not apply to {modality} input.")
    return spec


def check_params(key: str, params: dict[str, Any] | None) -> dict[str, Any]:
    """Defaults filled in, names and ranges checked, values converted to the declared type."""
    spec = method_spec(key)
    params = dict(params or {})
    allowed = {p.name: p for p in spec.params}
    unknown = sorted(set(params) - set(allowed))
    if unknown:
        names = ", ".join(allowed) or "none"
        raise InputError(f"{spec.label} has no parameter {', '.join(unknown)}. Its parameters: {names}.")
    out: dict[str, Any] = {}
    for name, p in allowed.items():
        value = params.get(name, p.default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (p.kind is int and float(value) != int(value)):
            raise InputError(f"{spec.label}: {name} must be {'a whole number' if p.kind is int else 'a number'}; "
                             f"got {value!r}.")
        value = p.kind(value)
        if not p.minimum <= value <= p.maximum:
            raise InputError(f"{spec.label}: {name} must lie in {p.minimum}..{p.maximum}; got {value}.")
        out[name] = value
    if key == "integrated_gradients" and out["max_steps"] < out["n_steps"]:
        raise InputError(f"Integrated gradients: max_steps ({out['max_steps']}) is below n_steps ({out['n_steps']}).")
    return out
