"""Kinds of attention heads, scored from their patterns: previous-token, first-token and induction heads,
and which heads carry one token's attention to another.

Pure functions over traces (no model, no UI). The induction score is the one of Olsson et al. 2022, "In-context
Learning and Induction Heads" (Anthropic; the TransformerLens demo's "induction stripe"): on a random token
sequence repeated twice, a head that attends from a token in the second copy to the token that followed its
first occurrence (query q, key q - L + 1 for repeats of length L) is completing the pattern it saw before.
The previous-token and first-token scores are the shares Clark et al. 2019 sort BERT's heads by.
"""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from models.errors import InputError
from models.trace import Trace

from .attention import example_attentions

SCORE_COLUMNS = ["previous_token", "first_token", "induction"]


def repeated_random_tokens(vocab_size: int, length: int, seed: int = 0, prefix: Sequence[int] = (),
                           skip: Sequence[int] = ()) -> torch.Tensor:
    """(1, len(prefix) + 2 * length) ids: ``prefix`` (a BOS), then ``length`` random ids, then the same ids again.

    ``skip``: ids never drawn (special tokens). The generator is seeded, so a lesson shows the same sequence every
    time. Ids come from the lower half of the vocabulary, where byte-level tokenizers keep ordinary word pieces.
    """
    if length < 2:
        raise InputError(f"A repeated sequence needs at least 2 tokens per copy; got {length}.")
    banned = {int(i) for i in skip}
    pool = [i for i in range(vocab_size // 2) if i not in banned]
    if len(pool) < 2 * length:  # a small vocabulary: draw from all of it
        pool = [i for i in range(vocab_size) if i not in banned]
    if len(pool) < length:
        raise InputError(f"The vocabulary has {len(pool)} ordinary tokens; {length} different ones were asked for.")
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(seed))[:length]
    ids = [pool[int(i)] for i in order]
    return torch.tensor([list(prefix) + ids + ids])  # (1, T)


def head_kind_scores(trace: Trace, repeat_length: int, offset: int = 0, example: int = 0) -> pd.DataFrame:
    """One row per (layer, head): previous-token, first-token and induction scores, each a share of attention.

    The trace is of ``offset`` leading tokens (a BOS) then a sequence of ``repeat_length`` tokens repeated twice
    (``repeated_random_tokens``). Every score averages over the query positions of the repeats:
        previous_token: weight on the position just before the query;
        first_token: weight on position 0 (where many heads park attention they do not need: an "attention sink");
        induction: in the second copy, weight on the token after the query token's first occurrence (q - L + 1).
    """
    patterns = example_attentions(trace, example)
    n = patterns[0].shape[-1] if patterns else 0
    L = int(repeat_length)
    if n != offset + 2 * L:
        raise InputError(f"The trace has {n} tokens; a sequence of {offset} + 2 x {L} was expected.")
    queries = torch.arange(offset + 1, n)                 # every repeat position with a previous token
    second = torch.arange(offset + L, n)                  # queries in the second copy
    rows = []
    for layer, pattern in enumerate(patterns):            # pattern (H, n, n)
        ids = trace.head_ids[layer] if trace.head_ids else list(range(pattern.shape[0]))
        p = pattern.double()
        previous = p[:, queries, queries - 1].mean(-1)    # (H,)
        first = p[:, queries, 0].mean(-1)                 # (H,)
        induction = p[:, second, second - L + 1].mean(-1)  # (H,)
        for index, head in enumerate(ids):
            rows.append({"layer": layer, "head": head, "previous_token": float(previous[index]),
                         "first_token": float(first[index]), "induction": float(induction[index])})
    return pd.DataFrame(rows, columns=["layer", "head", *SCORE_COLUMNS])


def score_grid(scores: pd.DataFrame, column: str, n_layers: int, n_heads: int) -> torch.Tensor:
    """(n_layers, n_heads) of one score column, NaN where a head is missing (pruned)."""
    grid = torch.full((n_layers, n_heads), float("nan"), dtype=torch.float64)
    for row in scores.itertuples(index=False):
        grid[row.layer, row.head] = getattr(row, column)
    return grid


def top_heads(scores: pd.DataFrame, column: str, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` heads with the highest ``column``: (layer, head, score), highest first (ties: lower layer first)."""
    order = scores.sort_values([column, "layer", "head"], ascending=[False, True, True], kind="stable").head(k)
    return [(int(r.layer), int(r.head), float(getattr(r, column))) for r in order.itertuples(index=False)]


def attention_between(trace: Trace, query: int, key: int, example: int = 0) -> pd.DataFrame:
    """One row per (layer, head): the share of position ``query``'s attention that lands on position ``key``."""
    patterns = example_attentions(trace, example)
    n = patterns[0].shape[-1] if patterns else 0
    if not (0 <= query < n and 0 <= key < n):
        raise InputError(f"Positions {query} and {key} must lie in 0..{n - 1}.")
    rows = []
    for layer, pattern in enumerate(patterns):
        ids = trace.head_ids[layer] if trace.head_ids else list(range(pattern.shape[0]))
        for index, head in enumerate(ids):
            rows.append({"layer": layer, "head": head, "weight": float(pattern[index, query, key])})
    return pd.DataFrame(rows, columns=["layer", "head", "weight"])


def find_token(tokens: Sequence[str], word: str, after: int = -1) -> int:
    """The first position after ``after`` whose token reads as ``word`` (markers such as "Ġ", "▁", "##" ignored)."""
    wanted = word.strip().lower()
    for position, token in enumerate(tokens):
        if position > after and token.lstrip("Ġ▁#").strip().lower() == wanted:
            return position
    raise InputError(f"No token {word!r} in {list(tokens)}.")
