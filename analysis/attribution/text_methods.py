"""Each attribution method on text, through Captum where Captum has it, one score per token.

Gradient methods act on the token embeddings (the output of `embed.word`), as in Captum's BERT
tutorial: position and segment embeddings are the same for input and baseline, so they carry
no attribution. Special tokens ([CLS], [SEP], BOS) are kept in every baseline.
"""
from __future__ import annotations

import time

import torch
from captum.attr import InputXGradient, LayerIntegratedGradients, Occlusion, Saliency

from analysis.rollout import attention_rollout, gradient_weighted_rollout

from .attention_grads import patterns_and_gradients
from .completeness import integrate_until_complete
from .result import Attribution, Progress, Target, no_progress
from .text_inputs import TextForward

# Integrated gradients runs its steps as one batch up to this many tokens, then in chunks (memory)
TOKENS_PER_BATCH = 8192


def integrated_gradients(fwd: TextForward, target: Target, n_steps: int = 50, max_steps: int = 400,
                         progress: Progress = no_progress) -> Attribution:
    """Layer integrated gradients on the token embeddings (Sundararajan et al. 2017), padding baseline."""
    start = time.perf_counter()
    inputs = fwd.inputs
    lig = LayerIntegratedGradients(fwd.from_ids, fwd.embedding)
    T = inputs.input_ids.shape[1]

    def attribute(steps: int) -> tuple[torch.Tensor, torch.Tensor]:
        return lig.attribute(inputs.input_ids, baselines=inputs.baseline_ids, target=target.index,
                             additional_forward_args=fwd.args(), n_steps=steps,
                             internal_batch_size=max(1, TOKENS_PER_BATCH // T), return_convergence_delta=True)

    run = integrate_until_complete(attribute, n_steps=n_steps, max_steps=max_steps, progress=progress)
    raw = run.attributions[0].detach()  # (T, d)
    notes = [f"steps {' -> '.join(str(s) for s, _ in run.history)}"] if len(run.history) > 1 else []
    if not run.converged:
        notes.append(f"completeness gap still above 5% at the limit of {run.n_steps} steps")
    return Attribution("integrated_gradients", scores=raw.sum(dim=-1), raw=raw, seconds=time.perf_counter() - start,
                       signed=True, convergence_delta=run.delta, output_difference=run.output_difference,
                       n_steps=run.n_steps, converged=run.converged, notes=notes)


def _embeds(fwd: TextForward) -> torch.Tensor:
    """The token embeddings as a leaf that wants gradients (Captum warns otherwise, and frozen weights would stop them)."""
    with torch.no_grad():
        return fwd.embedding(fwd.inputs.input_ids).requires_grad_(True)  # (1, T, d)


def saliency(fwd: TextForward, target: Target, progress: Progress = no_progress) -> Attribution:
    """Gradient norm per token (Simonyan et al. 2014), on the token embeddings."""
    start = time.perf_counter()
    grads = Saliency(fwd.from_embeds).attribute(_embeds(fwd), target=target.index,
                                                additional_forward_args=fwd.args(), abs=True)[0]  # (T, d)
    return Attribution("saliency", scores=grads.norm(dim=-1), raw=grads.detach(), signed=False,
                       seconds=time.perf_counter() - start)


def input_x_gradient(fwd: TextForward, target: Target, progress: Progress = no_progress) -> Attribution:
    """Embedding times gradient, summed over the embedding (Shrikumar et al. 2016)."""
    start = time.perf_counter()
    raw = InputXGradient(fwd.from_embeds).attribute(_embeds(fwd), target=target.index,
                                                    additional_forward_args=fwd.args())[0]  # (T, d)
    return Attribution("input_x_gradient", scores=raw.sum(dim=-1).detach(), raw=raw.detach(), signed=True,
                       seconds=time.perf_counter() - start)


def occlusion(fwd: TextForward, target: Target, window: int = 1, stride: int = 1,
              progress: Progress = no_progress) -> Attribution:
    """Drop in the target score when `window` tokens are replaced by padding (Zeiler & Fergus 2014)."""
    start = time.perf_counter()
    inputs = fwd.inputs
    T = inputs.input_ids.shape[1]
    window, stride = min(window, T), min(stride, T)
    progress(0.0, f"occlusion over {T} tokens")
    # the baseline keeps special tokens, so windows over them change only the words
    scores = Occlusion(fwd.from_ids).attribute(
        inputs.input_ids, sliding_window_shapes=(window,), strides=(stride,), baselines=inputs.baseline_ids,
        target=target.index, additional_forward_args=fwd.args(), perturbations_per_eval=8)[0].float()  # (T,)
    scores = scores.masked_fill(torch.tensor(inputs.special), 0.0)
    return Attribution("occlusion", scores=scores.detach(), signed=True, seconds=time.perf_counter() - start,
                       notes=[f"window {window}, stride {stride}"] if window > 1 or stride > 1 else [])


def rollout(fwd: TextForward, target: Target, residual_weight: float = 0.5,
            progress: Progress = no_progress) -> Attribution:
    """Attention rollout (Abnar & Zuidema 2020): the row of the position the model decides at."""
    start = time.perf_counter()
    inputs = fwd.inputs
    with torch.no_grad():
        out = fwd.model.forward(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask,
                                token_type_ids=inputs.token_type_ids, capture=True)
    flow = attention_rollout(out.attentions, residual_weight=residual_weight)[0]  # (T, T)
    return Attribution("attention_rollout", scores=flow[inputs.read_position].detach(), signed=False,
                       seconds=time.perf_counter() - start,
                       notes=["does not depend on the target: attention is the same for every class"])


def attention_x_gradient(fwd: TextForward, target: Target, progress: Progress = no_progress) -> Attribution:
    """Gradient-weighted attention rolled through the layers (Chefer et al. 2021), read at the deciding position."""
    start = time.perf_counter()
    model, inputs = fwd.model, fwd.inputs

    def run() -> torch.Tensor:
        out = model.forward(inputs_embeds=_embeds(fwd), attention_mask=inputs.attention_mask,
                            token_type_ids=inputs.token_type_ids, capture=True)
        return fwd.read_full(out.logits)[0, target.index]

    attentions, gradients = patterns_and_gradients(model, run)
    relevance = gradient_weighted_rollout(attentions, gradients)[0]  # (T, T)
    return Attribution("attention_x_gradient", scores=relevance[inputs.read_position].detach(), signed=False,
                       seconds=time.perf_counter() - start)


TEXT_METHODS = {
    "integrated_gradients": integrated_gradients,
    "saliency": saliency,
    "input_x_gradient": input_x_gradient,
    "occlusion": occlusion,
    "attention_rollout": rollout,
    "attention_x_gradient": attention_x_gradient,
}
