"""Steering vectors: a direction in the residual stream from contrast prompts, added while the model runs.

The vector is the difference of mean residual streams entering block ``layer`` over two sets of
prompts (Turner et al. 2023, "Activation Addition: Steering Language Models Without Optimization";
Rimsky et al. 2024, "Steering Llama 2 via Contrastive Activation Addition"):
``v = mean over positive prompts - mean over negative prompts``, each prompt reduced to the mean
over its tokens (or its last token). Steering adds ``alpha * v`` at ``blocks.{layer}.hook_resid_pre``
at every position, through ``model.hooks`` (the shared model is never changed). Vectors are saved
and loaded as safetensors with their layer and provenance in the metadata.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import torch
from safetensors.torch import load as load_bytes
from safetensors.torch import load_file, save, save_file

from models.errors import HeadIndexError, InputError, WeightFileError

from .generation import Sampling, decode, generate_tokens

REDUCTIONS = ("mean", "last")


@dataclass(frozen=True)
class SteeringVector:
    vector: torch.Tensor                 # (d_model,) float32
    layer: int                           # added at blocks.{layer}.hook_resid_pre
    positive: tuple[str, ...] = ()
    negative: tuple[str, ...] = ()
    reduce: str = "mean"                 # "mean" over each prompt's tokens, or its "last" token
    model_name: str = ""

    @property
    def hook_name(self) -> str:
        return f"blocks.{self.layer}.hook_resid_pre"

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    @property
    def d_model(self) -> int:
        return int(self.vector.shape[-1])


def _check_layer(model, layer: int) -> int:
    n_layers = model.config.n_layers
    if not isinstance(layer, int) or not 0 <= layer < n_layers:
        raise HeadIndexError(f"Layer {layer} out of range: steering adds to the input of a block, 0..{n_layers - 1}.")
    return layer


def _prompts(prompts: Sequence[str] | str, role: str) -> list[str]:
    chosen = [prompts] if isinstance(prompts, str) else list(prompts)
    chosen = [p for p in chosen if isinstance(p, str) and p.strip()]
    if not chosen:
        raise InputError(f"No {role} prompts: give at least one.")
    return chosen


@torch.no_grad()
def mean_residual(model, prompts: Sequence[str], layer: int, reduce: str = "mean") -> torch.Tensor:
    """(d_model,) the residual stream entering block ``layer``, averaged over prompts (each reduced first)."""
    _check_layer(model, layer)
    if reduce not in REDUCTIONS:
        raise InputError(f"Unknown reduction {reduce!r}; choose 'mean' or 'last'.")
    trace = model.run(list(prompts), capture=False)
    states = trace.hidden_states[layer].float()  # (B, T, d), right-padded
    mask = trace.attention_mask.float()  # (B, T)
    if reduce == "mean":
        per_prompt = (states * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)  # (B, d)
    else:
        last = trace.attention_mask.sum(1) - 1  # (B,)
        per_prompt = states[torch.arange(states.shape[0]), last]  # (B, d)
    return per_prompt.mean(0)  # (d,)


def steering_vector(model, positive: Sequence[str] | str, negative: Sequence[str] | str, layer: int,
                    reduce: str = "mean") -> SteeringVector:
    """mean residual(positive) - mean residual(negative) entering block ``layer``."""
    positive, negative = _prompts(positive, "positive"), _prompts(negative, "negative")
    vector = mean_residual(model, positive, layer, reduce) - mean_residual(model, negative, layer, reduce)
    return SteeringVector(vector=vector.contiguous(), layer=layer, positive=tuple(positive),
                          negative=tuple(negative), reduce=reduce, model_name=getattr(model, "name", ""))


def check_vector(model, vector: SteeringVector) -> None:
    """A vector fits this model: its width is d_model and its layer exists."""
    d_model = model.config.d_model
    if vector.vector.dim() != 1 or vector.d_model != d_model:
        raise InputError(f"The steering vector has shape {tuple(vector.vector.shape)}, but "
                         f"{getattr(model, 'name', '') or 'this model'}'s residual stream is {d_model} wide: it was "
                         f"made for another model{' (' + vector.model_name + ')' if vector.model_name else ''}.")
    _check_layer(model, vector.layer)


def steering_hooks(model, vector: SteeringVector, alpha: float) -> dict:
    """Hooks for ``model.hooks(...)`` that add ``alpha * v`` to the residual stream at every position."""
    check_vector(model, vector)
    alpha = float(alpha)

    def add(x: torch.Tensor, _name: str) -> torch.Tensor:
        return x + alpha * vector.vector.to(x.dtype)  # (B, T, d) + (d,)
    return {vector.hook_name: add}


def generate_steered(model, text: str, vector: SteeringVector, alpha: float, max_new_tokens: int = 20,
                     sampling: Sampling | None = None) -> list[int]:
    """New token ids generated with ``alpha * v`` added (greedy by default; sampled with ``sampling``)."""
    with model.hooks(steering_hooks(model, vector, alpha)):
        return generate_tokens(model, text, max_new_tokens=max_new_tokens, sampling=sampling)


@dataclass(frozen=True)
class SteeringComparison:
    prompt: str
    alpha: float
    plain_ids: list[int]
    steered_ids: list[int]
    plain_text: str
    steered_text: str

    @property
    def first_difference(self) -> int | None:
        """Index of the first new token where the two continuations part; None if they never do."""
        for i, (a, b) in enumerate(zip(self.plain_ids, self.steered_ids)):
            if a != b:
                return i
        return None if len(self.plain_ids) == len(self.steered_ids) else min(len(self.plain_ids), len(self.steered_ids))


def compare_steering(model, text: str, vector: SteeringVector, alpha: float, max_new_tokens: int = 20,
                     sampling: Sampling | None = None,
                     progress: Callable[[float, str], None] | None = None) -> SteeringComparison:
    """The plain continuation and the steered one, same sampler and seed.

    ``progress(fraction, message)`` is called before each of the two generations (a caller may stop there)."""
    check_vector(model, vector)
    if progress is not None:
        progress(0.0, f"plain: {max_new_tokens} new tokens")
    plain = generate_tokens(model, text, max_new_tokens=max_new_tokens, sampling=sampling)
    if progress is not None:
        progress(0.5, f"steered: {max_new_tokens} new tokens")
    steered = generate_steered(model, text, vector, alpha, max_new_tokens=max_new_tokens, sampling=sampling)
    return SteeringComparison(prompt=text, alpha=float(alpha), plain_ids=plain, steered_ids=steered,
                              plain_text=decode(model, plain), steered_text=decode(model, steered))


@torch.no_grad()
def steered_prediction(model, text: str, vector: SteeringVector, alpha: float, top_k: int = 5) -> pd.DataFrame:
    """For models that predict rather than generate (a classifier), or one next token: plain vs steered
    probabilities of the top outputs. Columns output, plain, steered, change."""
    check_vector(model, vector)
    plain = model.run(text, capture=False).logits
    with model.hooks(steering_hooks(model, vector, alpha)):
        steered = model.run(text, capture=False).logits
    if plain is None:
        raise InputError(f"{getattr(model, 'name', '') or 'This model'} has no task head: nothing to predict.")
    pick = (lambda l: l[0, -1]) if plain.dim() == 3 else (lambda l: l[0])
    p, q = pick(plain).double().softmax(-1), pick(steered).double().softmax(-1)
    k = min(top_k, len(p))
    if plain.dim() == 3:
        name = model.tokenizer.id_to_token
    else:
        labels = dict(getattr(model, "labels", {}) or {})
        name = lambda i: labels.get(i, f"LABEL_{i}")
    shown = dict.fromkeys(p.topk(k).indices.tolist() + q.topk(k).indices.tolist())
    rows = [{"output": name(i), "plain": float(p[i]), "steered": float(q[i]), "change": float(q[i] - p[i])}
            for i in shown]
    return pd.DataFrame(rows).sort_values("plain", ascending=False).reset_index(drop=True)


# ---------------------------------------------------------------------------- safetensors
def _metadata(vector: SteeringVector) -> dict[str, str]:
    return {"format": "transformer-workbench steering vector", "layer": str(vector.layer),
            "hook_name": vector.hook_name, "reduce": vector.reduce, "model_name": vector.model_name,
            "d_model": str(vector.d_model), "positive": json.dumps(list(vector.positive)),
            "negative": json.dumps(list(vector.negative))}


def _from_tensors(tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None, where: str) -> SteeringVector:
    if "vector" not in tensors:
        raise WeightFileError(f"{where} holds no tensor named 'vector': it is not a steering vector file.")
    metadata = metadata or {}
    try:
        layer = int(metadata.get("layer", "0"))
        positive = tuple(json.loads(metadata.get("positive", "[]")))
        negative = tuple(json.loads(metadata.get("negative", "[]")))
    except ValueError as error:
        raise WeightFileError(f"{where} has unreadable metadata: {error}.") from error
    return SteeringVector(vector=tensors["vector"].float(), layer=layer, positive=positive, negative=negative,
                          reduce=metadata.get("reduce", "mean"), model_name=metadata.get("model_name", ""))


def save_steering_vector(vector: SteeringVector, path: str | Path) -> Path:
    path = Path(path)
    save_file({"vector": vector.vector.detach().float().contiguous()}, str(path), metadata=_metadata(vector))
    return path


def load_steering_vector(path: str | Path) -> SteeringVector:
    path = Path(path)
    if not path.exists():
        raise WeightFileError(f"No steering vector at {path}.")
    try:
        from safetensors import safe_open
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata()
        tensors = load_file(str(path))
    except Exception as error:
        raise WeightFileError(f"{path} is not a readable safetensors file ({error}).") from error
    return _from_tensors(tensors, metadata, str(path))


def steering_vector_bytes(vector: SteeringVector) -> bytes:
    """The safetensors file as bytes (a download button's payload)."""
    return save({"vector": vector.vector.detach().float().contiguous()}, metadata=_metadata(vector))


def steering_vector_from_bytes(data: bytes, where: str = "the uploaded file") -> SteeringVector:
    try:
        tensors = load_bytes(data)
        header_length = int.from_bytes(data[:8], "little")
        metadata = json.loads(data[8 : 8 + header_length]).get("__metadata__", {})
    except Exception as error:
        raise WeightFileError(f"{where} is not a readable safetensors file ({type(error).__name__}).") from error
    return _from_tensors(tensors, metadata, where)


__all__ = ["SteeringVector", "SteeringComparison", "REDUCTIONS", "steering_vector", "mean_residual", "check_vector",
           "steering_hooks", "generate_steered", "compare_steering", "steered_prediction", "save_steering_vector",
           "load_steering_vector", "steering_vector_bytes", "steering_vector_from_bytes"]
