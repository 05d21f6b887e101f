"""Turn a user's head selection into per-layer scale vectors, with clear errors for bad indices.

Heads are named by their original numbers, so head 5 of layer 2 keeps its name after other
heads of that layer are pruned. Accepted forms:
  {layer: [heads]}              mask those heads (scale 0)
  {layer: {head: scale}}        soft scale per head (gradient-based scoring uses 1.0 with grad)
  tensor (n_layers, n_heads)    a scale for every original head; pruned heads must be 1 or 0
"""
from __future__ import annotations

from typing import Mapping, Union

import torch

from .config import ModelConfig
from .errors import HeadIndexError

HeadSpec = Union[Mapping[int, object], torch.Tensor]


def validate_heads(cfg: ModelConfig, layer: int, heads: list[int], present_only: bool = True) -> None:
    if not isinstance(layer, int) or not 0 <= layer < cfg.n_layers:
        raise HeadIndexError(f"Layer {layer} is out of range: the model has layers 0..{cfg.n_layers - 1}.")
    present = cfg.heads_in_layer(layer) if present_only else list(range(cfg.n_heads))
    for head in heads:
        if not isinstance(head, int) or not 0 <= head < cfg.n_heads:
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
        per_head = dict(chosen) if isinstance(chosen, Mapping) else {h: 0.0 for h in chosen}
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
