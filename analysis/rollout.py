"""Attention rollout and gradient-weighted rollout: how much each input token reaches each position.

Attention rollout (Abnar & Zuidema 2020, "Quantifying Attention Flow in Transformers") treats
each layer's head-averaged attention, mixed with the identity for the residual connection, as a
transition matrix and multiplies them from the first layer to the last.

Attention x gradient follows Chefer, Gur & Wolf 2021 ("Generic Attention-model Explainability
for Interpreting Bi-Modal and Encoder-Decoder Transformers"): each head's pattern is weighted by
the gradient of the target score with respect to it, the positive part is averaged over heads,
and the layers are accumulated as R <- R + A_bar @ R, starting from the identity.

Pure functions over attention patterns (and their gradients): no model, no hooks.
"""
from __future__ import annotations

from typing import Sequence

import torch

from models.errors import InputError


def attention_rollout(attentions: Sequence[torch.Tensor], residual_weight: float = 0.5,
                      start_layer: int = 0) -> torch.Tensor:
    """(B, T, T) rollout: row q says how much each input token flows into position q at the top.

    `attentions` are the per-layer patterns (B, H_layer, T, T) of `Trace.attentions`.
    `residual_weight` is the share of the identity (Abnar & Zuidema use 0.5): the residual
    stream carries a token's own state past every attention layer.
    """
    _check(attentions, start_layer)
    if not 0.0 <= residual_weight <= 1.0:
        raise InputError(f"residual_weight must lie in [0, 1]; got {residual_weight}.")
    B, _, T, _ = attentions[start_layer].shape
    eye = torch.eye(T, dtype=torch.float32, device=attentions[0].device).expand(B, T, T)  # (B, T, T)
    rollout = eye.clone()
    for pattern in attentions[start_layer:]:
        # a layer whose heads were all pruned passes the residual stream unchanged
        mean = pattern.float().mean(dim=1) if pattern.shape[1] else eye  # (B, T, T)
        mixed = residual_weight * eye + (1.0 - residual_weight) * mean  # (B, T, T)
        mixed = mixed / mixed.sum(dim=-1, keepdim=True).clamp_min(1e-12)  # rows sum to 1 again
        rollout = mixed @ rollout  # (B, T, T): later layers act on what earlier layers mixed
    return rollout


def gradient_weighted_rollout(attentions: Sequence[torch.Tensor], gradients: Sequence[torch.Tensor],
                              start_layer: int = 0) -> torch.Tensor:
    """(B, T, T) relevance R of Chefer et al. 2021 (eq. 5-6): A_bar = E_h[(grad * A)^+]; R <- R + A_bar @ R."""
    _check(attentions, start_layer)
    if len(gradients) != len(attentions):
        raise InputError(f"Got {len(gradients)} gradient tensors for {len(attentions)} attention layers.")
    B, _, T, _ = attentions[start_layer].shape
    relevance = torch.eye(T, dtype=torch.float32, device=attentions[0].device).expand(B, T, T).clone()  # (B, T, T)
    for pattern, grad in zip(attentions[start_layer:], gradients[start_layer:]):
        if pattern.shape != grad.shape:
            raise InputError(f"An attention pattern {tuple(pattern.shape)} and its gradient {tuple(grad.shape)} differ in shape.")
        if not pattern.shape[1]:
            continue  # every head pruned: nothing mixes tokens in this layer
        weighted = (grad.float() * pattern.float()).clamp_min(0).mean(dim=1)  # (B, T, T)
        relevance = relevance + weighted @ relevance
    return relevance


def _check(attentions: Sequence[torch.Tensor], start_layer: int) -> None:
    if not len(attentions):
        raise InputError("No attention patterns: run the model with capture on (model.run does) to get them.")
    if not 0 <= start_layer < len(attentions):
        raise InputError(f"start_layer {start_layer} is out of range: the model has layers 0..{len(attentions) - 1}.")
