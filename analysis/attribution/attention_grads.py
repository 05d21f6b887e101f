"""Attention patterns of one forward pass and the gradient of a score with respect to each, through scoped hooks.

The hooks live in this thread's context only (`model.hooks`), so a shared model is never
changed; gradients come from `torch.autograd.grad`, so no parameter's `.grad` is written.
"""
from __future__ import annotations

from typing import Callable

import torch

from models.workbench_model import WorkbenchModel


def patterns_and_gradients(model: WorkbenchModel, run: Callable[[], torch.Tensor], prefix: str = "blocks.",
                           with_gradients: bool = True) -> tuple[list[torch.Tensor], list[torch.Tensor] | None]:
    """Run `run()` (a forward with capture, returning the scalar score) and collect the patterns it produced.

    `prefix` picks the attention stack by hook name ("blocks." for encoders and decoders alone,
    e.g. "encoder.blocks." for an encoder-decoder). Layers whose heads were all pruned produce no
    pattern; they get an empty (1, 0, T, T) pattern so layer numbers stay aligned.
    """
    points = [name for name in model.hook_points if name.startswith(prefix) and name.endswith("attn.hook_pattern")
              and "cross" not in name]
    layer_of = {name: int(name[len(prefix):].split(".")[0]) for name in points}
    patterns: dict[int, torch.Tensor] = {}

    def keep(pattern: torch.Tensor, name: str) -> None:
        patterns[layer_of[name]] = pattern

    with torch.enable_grad(), model.hooks([(name, keep) for name in points]):
        score = run()
        layers = sorted(patterns)
        grads = torch.autograd.grad(score, [patterns[l] for l in layers]) if with_gradients else None
    n_layers = max(layer_of.values()) + 1 if layer_of else 0
    reference = patterns[layers[0]] if layers else None
    empty = lambda: reference.new_zeros(reference.shape[0], 0, *reference.shape[2:]) if reference is not None else None
    attentions = [patterns[l].detach() if l in patterns else empty() for l in range(n_layers)]
    if grads is None:
        return attentions, None
    by_layer = dict(zip(layers, grads))
    return attentions, [by_layer.get(l, empty()) for l in range(n_layers)]


def named_patterns_and_gradients(model: WorkbenchModel, run: Callable[[], torch.Tensor], names: list[str],
                                 with_gradients: bool = True) -> dict[str, tuple[torch.Tensor, torch.Tensor | None]]:
    """Like `patterns_and_gradients`, for hook points chosen by name (e.g. an encoder's and the cross-attention)."""
    patterns: dict[str, torch.Tensor] = {}

    def keep(pattern: torch.Tensor, name: str) -> None:
        patterns[name] = pattern

    with torch.enable_grad(), model.hooks([(name, keep) for name in names]):
        score = run()
        found = [name for name in names if name in patterns]
        grads = torch.autograd.grad(score, [patterns[n] for n in found]) if with_gradients else [None] * len(found)
    return {name: (patterns[name].detach(), grad) for name, grad in zip(found, grads)}
