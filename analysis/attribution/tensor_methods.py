"""Attribution for tensor inputs - pixels (1, C, H, W), audio features (1, F, frames), waveforms (1, samples).

Generic over a forward function `f(x) -> (B, n_outputs)`, decoupled from any model as Captum
does it, so image and audio models plug in by handing over their forward. The last
`unit_dims` axes are the units a person sees (2 for an image's height and width, 1 for time);
the axes before them (colour channels, mel bins) are summed for signed methods.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from captum.attr import InputXGradient, IntegratedGradients, Occlusion, Saliency

from models.errors import InputError

from .completeness import integrate_until_complete
from .result import Attribution, Progress, Target, no_progress

TensorForward = Callable[[torch.Tensor], torch.Tensor]  # (B, ...) -> (B, n_outputs)

# Integrated gradients batches at most this many input elements at once (memory)
ELEMENTS_PER_BATCH = 2 ** 21


@dataclass
class TensorInput:
    """One input for a tensor model and what its axes mean."""
    values: torch.Tensor                   # (1, ...) what forward takes
    baseline: torch.Tensor                 # (1, ...) black image, silence: "no information"
    unit_dims: int                         # trailing axes that are units (2: H, W; 1: time)
    attention: "AttentionMap | None" = None  # for rollout and attention x gradient
    batch_limit: int | None = None         # most inputs per forward pass (long sequences need few)


@dataclass
class AttentionMap:
    """How to get attention for the attention methods, and map its token row back onto the units.

    `read(x, target, with_gradients)` returns the patterns per layer (1, H, N, N) and, with
    `with_gradients`, the gradients of the target's score with respect to them (else None).
    """
    read: Callable[[torch.Tensor, Target, bool], tuple[list[torch.Tensor], list[torch.Tensor] | None]]
    row: int | None                                       # the token that decides (ViT: [CLS] = 0); None: every row
    to_units: Callable[[torch.Tensor], torch.Tensor]      # (N,) token scores -> unit scores
    # (N, N) relevance -> (N,): how the decision reads the positions, when it is not one row (e.g. through
    # a decoder's cross-attention); set by `read`, which sees the target
    reduce: Callable[[torch.Tensor], torch.Tensor] | None = None

    def decide(self, relevance: torch.Tensor) -> torch.Tensor:
        if self.reduce is not None:
            return self.reduce(relevance)
        return relevance.mean(dim=0) if self.row is None else relevance[self.row]  # mean pooling reads every row


def _reduce(raw: torch.Tensor, unit_dims: int, how: str) -> torch.Tensor:
    """(leading..., units...) -> (units...): sum for signed scores, max |.| for saliency (Simonyan et al.)."""
    lead = raw.dim() - unit_dims
    if lead == 0:
        return raw
    flat = raw.reshape(-1, *raw.shape[lead:])  # (channels, units...)
    return flat.abs().amax(dim=0) if how == "max_abs" else flat.sum(dim=0)


def integrated_gradients(f: TensorForward, x: TensorInput, target: Target, n_steps: int = 50,
                         max_steps: int = 400, progress: Progress = no_progress) -> Attribution:
    """Integrated gradients on the input tensor (Sundararajan et al. 2017) from `x.baseline`."""
    start = time.perf_counter()
    ig = IntegratedGradients(f)
    per_batch = max(1, ELEMENTS_PER_BATCH // max(1, x.values[0].numel()))
    per_batch = min(per_batch, x.batch_limit) if x.batch_limit else per_batch

    def attribute(steps: int):
        return ig.attribute(x.values, baselines=x.baseline, target=target.index, n_steps=steps,
                            internal_batch_size=per_batch, return_convergence_delta=True)

    run = integrate_until_complete(attribute, n_steps=n_steps, max_steps=max_steps, progress=progress)
    raw = run.attributions[0].detach()
    notes = [f"steps {' -> '.join(str(s) for s, _ in run.history)}"] if len(run.history) > 1 else []
    if not run.converged:
        notes.append(f"completeness gap still above 5% at the limit of {run.n_steps} steps")
    return Attribution("integrated_gradients", scores=_reduce(raw, x.unit_dims, "sum"), raw=raw, signed=True,
                       seconds=time.perf_counter() - start, convergence_delta=run.delta,
                       output_difference=run.output_difference, n_steps=run.n_steps, converged=run.converged,
                       notes=notes)


def _leaf(x: TensorInput) -> torch.Tensor:
    return x.values.detach().clone().requires_grad_(True)


def saliency(f: TensorForward, x: TensorInput, target: Target, progress: Progress = no_progress) -> Attribution:
    """|gradient|, the largest over channels / bins per unit (Simonyan et al. 2014)."""
    start = time.perf_counter()
    raw = Saliency(f).attribute(_leaf(x), target=target.index, abs=True)[0].detach()
    return Attribution("saliency", scores=_reduce(raw, x.unit_dims, "max_abs"), raw=raw, signed=False,
                       seconds=time.perf_counter() - start)


def input_x_gradient(f: TensorForward, x: TensorInput, target: Target, progress: Progress = no_progress) -> Attribution:
    """(input - baseline) x gradient would be IG with one step; this is Shrikumar et al.'s plain input x gradient."""
    start = time.perf_counter()
    raw = InputXGradient(f).attribute(_leaf(x), target=target.index)[0].detach()
    return Attribution("input_x_gradient", scores=_reduce(raw, x.unit_dims, "sum"), raw=raw, signed=True,
                       seconds=time.perf_counter() - start)


def occlusion(f: TensorForward, x: TensorInput, target: Target, window: int = 1, stride: int = 1,
              progress: Progress = no_progress) -> Attribution:
    """Drop in the target score when a window of units is set to the baseline (Zeiler & Fergus 2014).

    The window spans every channel / bin and `window` units along each unit axis.
    """
    start = time.perf_counter()
    shape = tuple(x.values.shape[1:])
    lead = len(shape) - x.unit_dims
    windows = shape[:lead] + tuple(min(window, n) for n in shape[lead:])
    strides = shape[:lead] + tuple(min(stride, n) for n in shape[lead:])
    progress(0.0, "occlusion")
    raw = Occlusion(f).attribute(x.values, sliding_window_shapes=windows, strides=strides, baselines=x.baseline,
                                 target=target.index, perturbations_per_eval=min(16, x.batch_limit or 16))[0].detach()
    # Captum gives every channel in a window the window's whole drop: summing would count it once per channel
    scores = raw.reshape(-1, *raw.shape[lead:]).mean(dim=0) if lead else raw
    return Attribution("occlusion", scores=scores, raw=raw, signed=True, seconds=time.perf_counter() - start,
                       notes=[f"window {window}, stride {stride}"])


def rollout(f: TensorForward, x: TensorInput, target: Target, residual_weight: float = 0.5,
            progress: Progress = no_progress) -> Attribution:
    """Attention rollout (Abnar & Zuidema 2020) of the deciding token, mapped onto the units."""
    from analysis.rollout import attention_rollout
    start = time.perf_counter()
    attention = _attention(x)
    attentions, _ = attention.read(x.values, target, False)
    row = attention.decide(attention_rollout(attentions, residual_weight=residual_weight)[0])  # (N,)
    notes = [] if attention.reduce else ["does not depend on the target: attention is the same for every class"]
    return Attribution("attention_rollout", scores=attention.to_units(row.detach()), signed=False,
                       seconds=time.perf_counter() - start, notes=notes)


def attention_x_gradient(f: TensorForward, x: TensorInput, target: Target, progress: Progress = no_progress) -> Attribution:
    """Gradient-weighted attention rollout (Chefer et al. 2021) of the deciding token, mapped onto the units."""
    from analysis.rollout import gradient_weighted_rollout
    start = time.perf_counter()
    attention = _attention(x)
    attentions, gradients = attention.read(x.values, target, True)
    row = attention.decide(gradient_weighted_rollout(attentions, gradients)[0])  # (N,)
    return Attribution("attention_x_gradient", scores=attention.to_units(row.detach()), signed=False,
                       seconds=time.perf_counter() - start)


def _attention(x: TensorInput) -> AttentionMap:
    if x.attention is None:
        raise InputError("This model exposes no attention patterns, so attention rollout and attention x gradient "
                         "do not apply; choose a gradient or occlusion method.")
    return x.attention


TENSOR_METHODS = {
    "integrated_gradients": integrated_gradients,
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "occlusion": occlusion,
    "attention_rollout": rollout,
    "attention_x_gradient": attention_x_gradient,
}
