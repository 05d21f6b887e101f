"""The residual stream layer by layer: norms, cosine similarities, and a 2-D PCA of token states.

Pure functions over a ``Trace``. The residual stream here is the state *before* the final norm
at every depth (``hidden_states[:-1]`` and ``resid_final``): transformers' last hidden state is
after the final norm, which would make the last layer's norm jump for pre-LN models (GPT-2,
Llama) for reasons that are not about the layer. Growth of the residual norm with depth and
the high cosine similarity of token states ("anisotropy") are discussed in Ethayarajh 2019,
"How Contextual are Contextualized Word Representations?".
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from models.errors import HeadIndexError, InputError
from models.trace import Trace


def residual_stream(trace: Trace, example: int = 0) -> torch.Tensor:
    """(L+1, n, d) states of one example, padding removed: embeddings, then after each block, before the final norm."""
    if not trace.hidden_states:
        raise InputError("This trace has no hidden states.")
    if not 0 <= example < len(trace.tokens):
        raise InputError(f"Example {example} does not exist: the trace holds {len(trace.tokens)} example(s).")
    n = trace.lengths[example]
    states = list(trace.hidden_states[:-1]) + [trace.resid_final]
    return torch.stack([h[example, :n].float() for h in states])  # (L+1, n, d)


def residual_norms(trace: Trace, example: int = 0) -> torch.Tensor:
    """(L+1, n) L2 norm of every token's residual-stream state at every depth."""
    return residual_stream(trace, example).norm(dim=-1)  # (L+1, n)


def norms_frame(trace: Trace, example: int = 0) -> pd.DataFrame:
    """Long form of ``residual_norms`` for plots and CSV: layer, position, token, norm."""
    norms = residual_norms(trace, example)  # (L+1, n)
    tokens = trace.tokens[example]
    rows = [{"layer": l, "position": p, "token": tokens[p], "norm": float(norms[l, p])}
            for l in range(norms.shape[0]) for p in range(norms.shape[1])]
    return pd.DataFrame(rows, columns=["layer", "position", "token", "norm"])


def layer_cosine_similarity(trace: Trace, example: int = 0, position: int | None = None) -> torch.Tensor:
    """(L+1, L+1) cosine similarity between depths: of one token's states, or averaged over tokens.

    Entry (a, b) is cos(h_a[t], h_b[t]) at ``position`` t, or its mean over every t when
    ``position`` is None: how much a token's state still points where it pointed at depth a.
    """
    states = F.normalize(residual_stream(trace, example), dim=-1)  # (L+1, n, d) unit vectors
    if position is not None:
        if not 0 <= position < states.shape[1]:
            raise InputError(f"Position {position} is outside the input (0..{states.shape[1] - 1}).")
        states = states[:, position : position + 1]  # (L+1, 1, d)
    return torch.einsum("and,bnd->abn", states, states).mean(-1)  # (L+1, L+1)


def token_cosine_similarity(trace: Trace, layer: int, example: int = 0) -> torch.Tensor:
    """(n, n) cosine similarity between the tokens' states at one depth (0 = embeddings)."""
    states = residual_stream(trace, example)  # (L+1, n, d)
    if not 0 <= layer < states.shape[0]:
        raise HeadIndexError(f"Layer {layer} is out of range: the residual stream has states 0..{states.shape[0] - 1}.")
    unit = F.normalize(states[layer], dim=-1)  # (n, d)
    return unit @ unit.T  # (n, n)


@dataclass
class Projection:
    """Token states of several depths in one 2-D PCA space (fitted on all of them together)."""
    frame: pd.DataFrame              # layer, position, token, pc1, pc2
    explained_variance_ratio: list[float]


def pca_projection(trace: Trace, layers: Sequence[int] | None = None, example: int = 0,
                   positions: Sequence[int] | None = None, normalize: bool = True) -> Projection:
    """Project the states of ``layers`` x ``positions`` onto their first two principal components.

    One PCA (Pearson 1901; scikit-learn's implementation) is fitted on every selected state
    together, so a token's points across layers form a trajectory in one shared plane.
    ``normalize`` scales every state to unit length first: residual norms grow with depth, and a
    few positions (often the first token) carry norms tens of times larger than the rest,
    which would otherwise make the plot show norm rather than direction.
    """
    from sklearn.decomposition import PCA

    states = residual_stream(trace, example)  # (L+1, n, d)
    layers = list(range(states.shape[0])) if layers is None else [int(l) for l in layers]
    positions = list(range(states.shape[1])) if positions is None else [int(p) for p in positions]
    if not layers or not positions:
        raise InputError("Pick at least one layer and one token to project.")
    if any(not 0 <= l < states.shape[0] for l in layers):
        raise HeadIndexError(f"Layers must lie in 0..{states.shape[0] - 1}; got {layers}.")
    if any(not 0 <= p < states.shape[1] for p in positions):
        raise InputError(f"Positions must lie in 0..{states.shape[1] - 1}; got {positions}.")
    chosen = states[layers][:, positions]  # (l, p, d)
    if normalize:
        chosen = F.normalize(chosen, dim=-1)
    flat = chosen.reshape(-1, chosen.shape[-1]).double().numpy()  # (l*p, d)
    if flat.shape[0] < 2:
        raise InputError("PCA needs at least two states: pick more layers or tokens.")
    pca = PCA(n_components=2, svd_solver="full")
    points = pca.fit_transform(flat)  # (l*p, 2)
    if points.shape[1] < 2:  # only possible with a single distinct state
        points = np.pad(points, ((0, 0), (0, 2 - points.shape[1])))
    tokens = trace.tokens[example]
    grid = [(l, p) for l in layers for p in positions]
    frame = pd.DataFrame({"layer": [l for l, _ in grid], "position": [p for _, p in grid],
                          "token": [tokens[p] for _, p in grid], "pc1": points[:, 0], "pc2": points[:, 1]})
    ratio = [float(r) for r in pca.explained_variance_ratio_] + [0.0] * (2 - len(pca.explained_variance_ratio_))
    return Projection(frame=frame, explained_variance_ratio=ratio)


__all__ = ["residual_stream", "residual_norms", "norms_frame", "layer_cosine_similarity",
           "token_cosine_similarity", "pca_projection", "Projection"]
