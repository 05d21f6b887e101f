"""Turn a user's head selection into per-layer scale vectors, with clear errors for bad indices.

Heads are named by their original numbers, so head 5 of layer 2 keeps its name after other
heads of that layer are pruned. Accepted forms:
  {layer: [heads]}              mask those heads (scale 0)
  {layer: {head: scale}}        soft scale per head (gradient-based scoring uses 1.0 with grad)
  tensor (n_layers, n_heads)    a scale for every original head; pruned heads must be 1 or 0
"""
from __future__ import annotations

import operator
from typing import Mapping, Union

import torch

from .config import ModelConfig
from .errors import HeadIndexError

HeadSpec = Union[Mapping[int, object], torch.Tensor]


def as_index(value: object, what: str) -> int:
    """A whole number from ints, numpy or torch integers (widgets and DataFrames hand those over); never a bool."""
    if isinstance(value, bool):
        raise HeadIndexError(f"{what} must be a whole number; got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise HeadIndexError(f"{what} must be a whole number; got {value!r}.") from None


def heads_of(layer: int, chosen: object) -> list[int]:
    """The head list of one layer: a list of heads, or one head alone."""
    if isinstance(chosen, (str, bytes)) or not hasattr(chosen, "__iter__"):
        chosen = [chosen]
    return [as_index(h, f"Each head of layer {layer}") for h in chosen]


def selected_heads(cfg: ModelConfig, spec: Mapping[int, object]) -> dict[int, list[int]]:
    """{layer: [heads]} with plain ints, checked against the model; for pruning."""
    if not isinstance(spec, Mapping):
        raise HeadIndexError("Give heads as {layer: [heads]}, e.g. {2: [0, 5]}.")
    out: dict[int, list[int]] = {}
    for layer, chosen in spec.items():
        layer = as_index(layer, f"Layer {layer!r}")
        out[layer] = sorted(set(heads_of(layer, chosen)))
        validate_heads(cfg, layer, out[layer])
    return out


def check_scale_shapes(cfg: ModelConfig, scales: Mapping[int, torch.Tensor]) -> None:
    """Per-layer scales: (H_layer,) for the batch, or (B, H_layer) per example, over the heads present."""
    for layer, vector in scales.items():
        validate_heads(cfg, layer, [])
        expected = len(cfg.heads_in_layer(layer))
        if vector.dim() not in (1, 2) or vector.shape[-1] != expected:
            raise HeadIndexError(f"Head scales of layer {layer} must have shape ({expected},) or (batch, {expected}), "
                                 f"one per head present; got {tuple(vector.shape)}.")


def validate_heads(cfg: ModelConfig, layer: int, heads: list[int], present_only: bool = True) -> None:
    if not isinstance(layer, int) or isinstance(layer, bool) or not 0 <= layer < cfg.n_layers:
        raise HeadIndexError(f"Layer {layer} is out of range: the model has layers 0..{cfg.n_layers - 1}.")
    present = cfg.heads_in_layer(layer) if present_only else list(range(cfg.n_heads))
    for head in heads:
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < cfg.n_heads:
            raise HeadIndexError(f"Head {head} of layer {layer} is out of range: heads are 0..{cfg.n_heads - 1}.")
        if head not in present:
            raise HeadIndexError(f"Head {head} of layer {layer} was pruned; it cannot be selected.")


def head_scales_from_spec(cfg: ModelConfig, spec: HeadSpec) -> dict[int, torch.Tensor]:
    """layer -> (H_layer,) scales over the heads still present in that layer."""
    scales: dict[int, torch.Tensor] = {}
    if isinstance(spec, torch.Tensor):
        if spec.shape != (cfg.n_layers, cfg.n_heads):
            raise HeadIndexError(
                f"A head mask tensor must have shape ({cfg.n_layers}, {cfg.n_heads}) (layers, heads); got {tuple(spec.shape)}.")
        for layer in range(cfg.n_layers):
            scales[layer] = spec[layer, cfg.heads_in_layer(layer)]
        return scales
    if not isinstance(spec, Mapping):
        raise HeadIndexError("Give heads as {layer: [heads]}, {layer: {head: scale}}, or a (layers, heads) tensor.")
    for layer, chosen in spec.items():
        layer = as_index(layer, f"Layer {layer!r}")
        if isinstance(chosen, Mapping):
            per_head = {as_index(h, f"Head {h!r} of layer {layer}"): v for h, v in chosen.items()}
        else:
            per_head = {h: 0.0 for h in heads_of(layer, chosen)}
        validate_heads(cfg, layer, list(per_head))
        present = cfg.heads_in_layer(layer)
        vector = torch.ones(len(present))
        for head, value in per_head.items():
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise HeadIndexError(f"Scale {value} for head {head} of layer {layer} must lie between 0 and 1.")
            vector[present.index(head)] = value
        scales[layer] = vector
    return scales


def combine(a: dict[int, torch.Tensor], b: dict[int, torch.Tensor]) -> dict[int, torch.Tensor]:
    """Nested masks multiply."""
    out = dict(a)
    for layer, vector in b.items():
        out[layer] = out[layer] * vector if layer in out else vector
    return out
