"""Turn a user's head selection into per-layer scale vectors keyed by (stack, layer), with clear errors.

Heads are named by their original numbers, so head 5 of layer 2 keeps its name after other
heads of that layer are pruned. A layer is named by `(stack, layer)`; a plain integer means the
main stack (the only one of a one-stack model, the decoder's self-attention of an
encoder-decoder), and "encoder.3" is read as ("encoder", 3). Accepted forms:
  {layer: [heads]}              mask those heads (scale 0)
  {layer: {head: scale}}        soft scale per head (gradient-based scoring uses 1.0 with grad)
  {"encoder": {layer: ...}}     nested by stack
  tensor (n_layers, n_heads)    a scale for every original head of the main stack; pruned heads 1 or 0
"""
from __future__ import annotations

import operator
from typing import Mapping, Union

import torch

from .config import HeadKey, ModelConfig
from .errors import HeadIndexError

HeadSpec = Union[Mapping[object, object], torch.Tensor]
HeadScales = dict[HeadKey, torch.Tensor]


def as_index(value: object, what: str) -> int:
    """A whole number from ints, numpy or torch integers (widgets and DataFrames hand those over); never a bool."""
    if isinstance(value, bool):
        raise HeadIndexError(f"{what} must be a whole number; got {value!r}.")
    try:
        return operator.index(value)
    except TypeError:
        raise HeadIndexError(f"{what} must be a whole number; got {value!r}.") from None


def head_key(cfg: ModelConfig, key: object) -> HeadKey:
    """(stack, layer) from an int (the main stack), a (stack, layer) pair or "stack.N"; checked against the model."""
    stacks = cfg.stacks
    if isinstance(key, str) and "." in key:
        stack, _, layer = key.partition(".")
        key = (stack, int(layer)) if layer.isdigit() else key
    if isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str):
        stack, layer = key[0], as_index(key[1], f"Layer {key[1]!r}")
    elif isinstance(key, str):
        raise HeadIndexError(_key_help(cfg, key))
    else:
        stack, layer = cfg.main_stack, as_index(key, f"Layer {key!r}")
    if stack not in stacks:
        raise HeadIndexError(_key_help(cfg, key))
    n_layers = stacks[stack][0]
    if not 0 <= layer < n_layers:
        where = f"the {stack} has" if len(stacks) > 1 else "the model has"
        raise HeadIndexError(f"Layer {layer} is out of range: {where} layers 0..{n_layers - 1}.")
    return stack, layer


def _key_help(cfg: ModelConfig, key: object) -> str:
    if len(cfg.stacks) == 1:
        return f"Layer {key!r}: name a layer by its number, e.g. {{2: [0, 5]}}."
    names = "', '".join(f"{s}.N" for s in cfg.stacks)
    return (f"Head key {key!r}: use a layer number (the {cfg.main_stack}), ('stack', layer), or '{names}' "
            f"(stacks: {', '.join(cfg.stacks)}).")


def heads_of(layer: object, chosen: object) -> list[int]:
    """The head list of one layer: a list of heads, or one head alone."""
    if isinstance(chosen, (str, bytes)) or not hasattr(chosen, "__iter__"):
        chosen = [chosen]
    return [as_index(h, f"Each head of layer {layer}") for h in chosen]


def _flatten(cfg: ModelConfig, spec: Mapping) -> dict[HeadKey, object]:
    """{key: chosen} with nested {"encoder": {...}} unfolded and every key made (stack, layer)."""
    flat: dict[HeadKey, object] = {}
    for key, value in spec.items():
        if isinstance(key, str) and key in cfg.stacks:
            if not isinstance(value, Mapping):
                raise HeadIndexError(f"{key!r} must map layers to heads, e.g. {{{key!r}: {{0: [1, 2]}}}}.")
            for layer, chosen in value.items():
                flat[head_key(cfg, (key, layer))] = chosen
        else:
            flat[head_key(cfg, key)] = value
    return flat


def validate_heads(cfg: ModelConfig, key: HeadKey, heads: list[int]) -> None:
    stack, layer = key
    n_heads = cfg.stacks[stack][1]
    present = cfg.heads_in_layer(layer, stack)
    where = f"{stack} layer {layer}" if len(cfg.stacks) > 1 else f"layer {layer}"
    for head in heads:
        if not isinstance(head, int) or isinstance(head, bool) or not 0 <= head < n_heads:
            raise HeadIndexError(f"Head {head} of {where} is out of range: heads are 0..{n_heads - 1}.")
        if head not in present:
            raise HeadIndexError(f"Head {head} of {where} was pruned; it cannot be selected.")


def selected_heads(cfg: ModelConfig, spec: Mapping) -> dict[HeadKey, list[int]]:
    """{(stack, layer): [heads]} with plain ints, checked against the model; for pruning."""
    if not isinstance(spec, Mapping):
        raise HeadIndexError("Give heads as {layer: [heads]}, e.g. {2: [0, 5]}.")
    out: dict[HeadKey, list[int]] = {}
    for key, chosen in _flatten(cfg, spec).items():
        out[key] = sorted(set(heads_of(key[1], chosen)))
        validate_heads(cfg, key, out[key])
    return out


def check_scales(cfg: ModelConfig, scales: Mapping) -> HeadScales:
    """Per-layer scales handed to `forward`, keyed by (stack, layer): (H_layer,) for the batch, or
    (B, H_layer) per example, over the heads present."""
    out: HeadScales = {}
    for key, vector in scales.items():
        key = head_key(cfg, key)
        expected = len(cfg.heads_in_layer(key[1], key[0]))
        if vector.dim() not in (1, 2) or vector.shape[-1] != expected:
            raise HeadIndexError(f"Head scales of layer {key[1]} must have shape ({expected},) or (batch, {expected}), "
                                 f"one per head present; got {tuple(vector.shape)}.")
        out[key] = vector
    return out


def head_scales_from_spec(cfg: ModelConfig, spec: HeadSpec) -> HeadScales:
    """(stack, layer) -> (H_layer,) scales over the heads still present in that layer."""
    if isinstance(spec, torch.Tensor):
        if spec.shape != (cfg.n_layers, cfg.n_heads):
            raise HeadIndexError(f"A head mask tensor must have shape ({cfg.n_layers}, {cfg.n_heads}) (layers, heads); "
                                 f"got {tuple(spec.shape)}.")
        # the same rule as the dict form's scales: NaN or 5.0 would silently scale a head's output
        if not bool(((spec >= 0) & (spec <= 1)).all()):
            raise HeadIndexError("A head mask tensor holds only scales between 0 (masked) and 1 (kept); this one has "
                                 "values outside that (or NaN).")
        return {(cfg.main_stack, layer): spec[layer, cfg.heads_in_layer(layer)] for layer in range(cfg.n_layers)}
    if not isinstance(spec, Mapping):
        raise HeadIndexError("Give heads as {layer: [heads]}, {layer: {head: scale}}, or a (layers, heads) tensor.")
    scales: HeadScales = {}
    for key, chosen in _flatten(cfg, spec).items():
        if isinstance(chosen, Mapping):
            per_head = {as_index(h, f"Head {h!r} of layer {key[1]}"): v for h, v in chosen.items()}
        else:
            per_head = {h: 0.0 for h in heads_of(key[1], chosen)}
        validate_heads(cfg, key, list(per_head))
        present = cfg.heads_in_layer(key[1], key[0])
        vector = torch.ones(len(present))
        for head, value in per_head.items():
            value = float(value)
            if not 0.0 <= value <= 1.0:
                raise HeadIndexError(f"Scale {value} for head {head} of layer {key[1]} must lie between 0 and 1.")
            vector[present.index(head)] = value
        scales[key] = vector
    return scales


def combine(a: HeadScales, b: HeadScales) -> HeadScales:
    """Nested masks multiply."""
    out = dict(a)
    for key, vector in b.items():
        out[key] = out[key] * vector if key in out else vector
    return out
