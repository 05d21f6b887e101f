"""Per-head attention statistics and the pieces the Attention page draws.

Pure functions over attention patterns (``Trace.attentions``): no model, no hooks, no UI.
The statistics are the ones used to sort heads into kinds in Clark, Khandelwal, Levy &
Manning 2019, "What Does BERT Look At? An Analysis of BERT's Attention" (entropy, attention
to [CLS]/[SEP], to the previous token) and the mean attention distance of Dosovitskiy et al.
2021, "An Image is Worth 16x16 Words" (there in pixels, here in token positions).
Attention rollout lives in ``analysis.rollout`` (Abnar & Zuidema 2020).
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pandas as pd
import torch

from models.errors import HeadIndexError, InputError
from models.trace import Trace

MEAN_OF_LAYER = "mean"

STAT_COLUMNS = ["entropy", "entropy_normalized", "mean_distance", "to_special", "to_previous", "to_self", "max_weight"]


def example_attentions(trace: Trace, example: int = 0) -> tuple[torch.Tensor, ...]:
    """Per-layer patterns (H_layer, n, n) of one example, padding removed."""
    if not trace.attentions:
        raise InputError("This trace has no attention patterns: run the model with capture on (model.run does).")
    if not 0 <= example < len(trace.tokens):
        raise InputError(f"Example {example} does not exist: the trace holds {len(trace.tokens)} example(s).")
    n = trace.lengths[example]
    return tuple(a[example, :, :n, :n].float() for a in trace.attentions)  # each (H, n, n)


def dense_attentions(trace: Trace, n_heads: int, example: int = 0) -> tuple[torch.Tensor, ...]:
    """Per-layer (1, n_heads, n, n) patterns with each head at its original number.

    A pruned head's slot is all zeros (draws nothing), so views that expect the same number of
    heads in every layer (bertviz) still label the remaining heads by their real names.
    """
    patterns = example_attentions(trace, example)
    out = []
    for layer, pattern in enumerate(patterns):
        ids = trace.head_ids[layer] if trace.head_ids else list(range(pattern.shape[0]))
        if ids == list(range(n_heads)):
            out.append(pattern[None])  # (1, H, n, n) nothing pruned: no copy
            continue
        full = pattern.new_zeros((1, n_heads, *pattern.shape[1:]))  # (1, n_heads, n, n)
        full[0, ids] = pattern
        out.append(full)
    return tuple(out)


def special_token_mask(tokens: Sequence[str], special_tokens: Collection[str]) -> torch.Tensor:
    """(n,) bool: True where the token is one of the tokenizer's special tokens ([CLS], [SEP], <s>, ...)."""
    special = set(special_tokens)
    return torch.tensor([t in special for t in tokens], dtype=torch.bool)


def head_pattern(trace: Trace, layer: int, head: int | str = MEAN_OF_LAYER, example: int = 0) -> torch.Tensor:
    """(n, n) attention of one head (original head number) or the mean over a layer's heads.

    Rows are queries (the attending position), columns keys; each row sums to 1.
    """
    patterns = example_attentions(trace, example)
    if not 0 <= layer < len(patterns):
        raise HeadIndexError(f"Layer {layer} is out of range: this model has layers 0..{len(patterns) - 1}.")
    layer_pattern = patterns[layer]  # (H, n, n)
    if head == MEAN_OF_LAYER:
        if layer_pattern.shape[0] == 0:
            raise HeadIndexError(f"Layer {layer} has no heads left (all pruned); pick another layer.")
        return layer_pattern.mean(0)  # (n, n)
    ids = trace.head_ids[layer] if trace.head_ids else list(range(layer_pattern.shape[0]))
    if head not in ids:
        raise HeadIndexError(f"Layer {layer} has no head {head}; its heads are {ids}.")
    return layer_pattern[ids.index(head)]  # (n, n)


def row_entropy(pattern: torch.Tensor) -> torch.Tensor:
    """Entropy in nats of each attention row (over the last axis), in the pattern's dtype; 0 log 0 = 0."""
    return -(pattern * torch.log(pattern.clamp_min(1e-30))).sum(-1)


def _layer_statistics(pattern: torch.Tensor, special: torch.Tensor, causal: bool) -> dict[str, torch.Tensor]:
    """Statistics of every head of one layer, averaged over query positions; each value (H,)."""
    H, n, _ = pattern.shape
    p = pattern.double()  # (H, n, n) double: entropies of near-one-hot rows need the precision
    positions = torch.arange(n, dtype=torch.float64)
    distance = (positions[:, None] - positions[None, :]).abs()  # (n, n) |query - key|
    entropy_rows = row_entropy(p)  # (H, n)
    # A causal query q may attend to q + 1 keys, a bidirectional one to all n: the maximum
    # entropy differs per row, so the normalized entropy divides row by row.
    allowed = (positions + 1) if causal else torch.full((n,), float(n), dtype=torch.float64)  # (n,)
    has_choice = allowed > 1  # a row with a single allowed key has no entropy to speak of
    if has_choice.any():
        normalized = (entropy_rows[:, has_choice] / torch.log(allowed[has_choice])).mean(-1)  # (H,)
    else:
        normalized = torch.zeros(H, dtype=torch.float64)
    previous = p.diagonal(offset=-1, dim1=-2, dim2=-1)  # (H, n-1): query q -> key q-1
    return {
        "entropy": entropy_rows.mean(-1),
        "entropy_normalized": normalized,
        "mean_distance": (p * distance).sum(-1).mean(-1),
        "to_special": p[..., special].sum(-1).mean(-1) if special.any() else torch.zeros(H, dtype=torch.float64),
        "to_previous": previous.mean(-1) if n > 1 else torch.zeros(H, dtype=torch.float64),
        "to_self": p.diagonal(dim1=-2, dim2=-1).mean(-1),
        "max_weight": p.amax(-1).mean(-1),
    }


def head_statistics(trace: Trace, special_tokens: Collection[str] = (), causal: bool = False,
                    example: int = 0) -> pd.DataFrame:
    """One row per (layer, head): how each head spreads its attention, averaged over query positions.

    Columns:
        entropy: mean row entropy in nats (0 = every query looks at one key).
        entropy_normalized: row entropy over its maximum, log(number of keys the query may see).
        mean_distance: mean |query - key| in tokens, weighted by attention.
        to_special: share of attention on special tokens ([CLS], [SEP], <s>, ...).
        to_previous: attention from each token to the one before it (queries 1..n-1).
        to_self: attention from each token to itself.
        max_weight: mean of each row's largest weight.

    ``causal`` only changes the normalization of the entropy (a causal query sees fewer keys).
    Heads are numbered as in the original model, so a pruned model keeps its head names.
    """
    patterns = example_attentions(trace, example)
    tokens = trace.tokens[example]
    special = special_token_mask(tokens, special_tokens)  # (n,)
    rows = []
    for layer, pattern in enumerate(patterns):
        if pattern.shape[0] == 0:
            continue  # every head of this layer pruned
        stats = _layer_statistics(pattern, special, causal)
        ids = trace.head_ids[layer] if trace.head_ids else list(range(pattern.shape[0]))
        for index, head in enumerate(ids):
            rows.append({"layer": layer, "head": head, **{k: float(v[index]) for k, v in stats.items()}})
    return pd.DataFrame(rows, columns=["layer", "head", *STAT_COLUMNS])


@dataclass(frozen=True)
class SparseAttention:
    """The ``k`` largest weights of each query row, per head: what a line view needs to draw."""
    keys: torch.Tensor       # (H, n, k) long: key positions, largest weight first
    weights: torch.Tensor    # (H, n, k) float: their weights
    dropped_mass: torch.Tensor  # (H, n) float: attention left out of the view (1 - sum of kept weights)


def top_k_attention(pattern: torch.Tensor, k: int) -> SparseAttention:
    """Keep each row's ``k`` strongest keys of a (H, n, n) pattern (or (n, n): one head)."""
    if k < 1:
        raise InputError(f"top-k must be at least 1; got {k}.")
    pattern = pattern[None] if pattern.dim() == 2 else pattern  # (H, n, n)
    k = min(k, pattern.shape[-1])
    weights, keys = pattern.float().topk(k, dim=-1)  # (H, n, k) each
    return SparseAttention(keys=keys, weights=weights, dropped_mass=(1.0 - weights.sum(-1)).clamp_min(0.0))


def rollout_per_layer(attentions: Sequence[torch.Tensor], residual_weight: float = 0.5) -> torch.Tensor:
    """(L, n, n) attention rollout up to each layer (Abnar & Zuidema 2020), for one example.

    ``attentions`` are per-layer (H, n, n) or (1, H, n, n) patterns; entry l is the rollout of
    layers 0..l, so the last entry equals ``analysis.rollout.attention_rollout`` of all layers.
    """
    from analysis.rollout import attention_rollout

    batched = [a if a.dim() == 4 else a[None] for a in attentions]  # each (1, H, n, n)
    if not batched:
        raise InputError("No attention patterns to roll out.")
    n = batched[0].shape[-1]
    eye = torch.eye(n)  # (n, n)
    current = eye
    out = []
    for pattern in batched:
        # one layer at a time: rollout(l) = mixed(l) @ rollout(l - 1), same rule as attention_rollout
        step = attention_rollout([pattern], residual_weight=residual_weight)[0]  # (n, n)
        current = step @ current  # (n, n)
        out.append(current)
    return torch.stack(out)  # (L, n, n)


def special_tokens_of(model) -> set[str]:
    """The tokenizer's special tokens ([CLS], [SEP], <s>, <|endoftext|>, ...), not counting [UNK].

    [UNK] stands in for a real word the vocabulary lacks, so attention to it is attention to a word.
    """
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        return set()
    return {text for role, text in tokenizer.special.items() if role != "unk_token"}


__all__ = ["dense_attentions", "head_statistics", "head_pattern", "special_token_mask", "special_tokens_of",
           "example_attentions", "top_k_attention",
           "SparseAttention", "rollout_per_layer", "MEAN_OF_LAYER", "STAT_COLUMNS"]
