"""Side by side: several pipelines' results on one input, their latency, agreement, and a compact attention summary.

Pure functions over pipeline results (each carries `.trace` and `.seconds`).
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Mapping, Sequence

import pandas as pd
import torch

from .attention import row_entropy


def top_answer(result: Any) -> str:
    """The one-line answer of a pipeline result: a label, a transcript, a span, a generated text, a filler."""
    if isinstance(result, dict):
        for key in ("text", "answer", "generated_text", "label", "token_str"):
            if key in result:
                return str(result[key]).strip()
        return str(result)
    if isinstance(result, list) and result:
        first = result[0]
        if isinstance(first, list):
            return top_answer(first)
        if isinstance(first, dict) and "entity" in first:
            return " ".join(f"{r['word']}:{r['entity']}" for r in result)
        return top_answer(first)
    return ""


def top_score(result: Any) -> float | None:
    if isinstance(result, dict):
        return float(result["score"]) if "score" in result else None
    if isinstance(result, list) and result and isinstance(result[0], dict) and "score" in result[0]:
        return float(result[0]["score"])
    return None


SUMMARY_COLUMNS = ["layers", "entropy_first", "entropy_last", "on_first_position"]
PROFILE_COLUMNS = ["model", "layer", "depth", "entropy", "on_first_position"]


def _summarised_patterns(trace: Any) -> list[torch.Tensor]:
    """The per-layer patterns a summary reads: an encoder's (speech, images) or the model's own; pruned-empty layers skipped."""
    return [a for a in (trace.encoder_attentions or trace.attentions) if a.shape[1]]


def layer_statistics(trace: Any) -> list[tuple[float, float]]:
    """Per layer of the first example: (mean attention entropy in nats over keys, mean share on position 0)."""
    stats = []
    for pattern in _summarised_patterns(trace):
        p = pattern[0].float()  # (H, T, S)
        stats.append((float(row_entropy(p).mean()), float(p[..., 0].mean())))
    return stats


def attention_summary(trace: Any) -> dict[str, float]:
    """Mean attention entropy (nats, over keys) of the first and last layer, and the share of attention on position 0.

    Low entropy = focused heads; a high share on position 0 ([CLS], <s>) is the usual "attention sink".
    """
    return _summary(layer_statistics(trace))


def _summary(stats: list[tuple[float, float]]) -> dict[str, float]:
    if not stats:
        return {"layers": 0, "entropy_first": math.nan, "entropy_last": math.nan, "on_first_position": math.nan}
    return {"layers": len(stats), "entropy_first": stats[0][0], "entropy_last": stats[-1][0],
            "on_first_position": stats[-1][1]}


def attention_profile(results: Mapping[str, Any]) -> pd.DataFrame:
    """Long form, one row per model and layer: mean entropy and share on position 0, with depth 0..1 so that
    models of different depths line up (first layer 0, last layer 1)."""
    rows = []
    for name, result in results.items():
        trace = getattr(result, "trace", None)
        stats = layer_statistics(trace) if trace is not None else []
        for layer, (entropy, on_first) in enumerate(stats):
            rows.append({"model": name, "layer": layer, "depth": layer / max(1, len(stats) - 1),
                         "entropy": entropy, "on_first_position": on_first})
    return pd.DataFrame(rows, columns=PROFILE_COLUMNS)


def comparison_table(results: Mapping[str, Any], profile: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per model: answer, score, latency, and the attention summary (read off `profile`, the
    `attention_profile` of these results, when the caller has it already)."""
    profile = attention_profile(results) if profile is None else profile
    rows = []
    for name, result in results.items():
        mine = profile[profile["model"] == name]
        stats = list(zip(mine["entropy"], mine["on_first_position"]))
        rows.append({"model": name, "answer": top_answer(result), "score": top_score(result),
                     "latency_ms": 1000 * float(getattr(result, "seconds", math.nan)), **_summary(stats)})
    return pd.DataFrame(rows, columns=["model", "answer", "score", "latency_ms", *SUMMARY_COLUMNS])


def _words(text: str) -> list[str]:
    return "".join(c if c.isalnum() or c in " '" else " " for c in text.lower()).split()


def answer_agreement(answers: Mapping[str, str]) -> pd.DataFrame:
    """Pairwise agreement between models' answers: 1 - word error rate of one against the other (0..1), symmetric.

    Equal labels score 1; transcripts score by how many words match (word-level edit distance).
    """
    names = list(answers)
    table = pd.DataFrame(1.0, index=names, columns=names)
    for a, b in combinations(names, 2):
        wa, wb = _words(answers[a]), _words(answers[b])
        longest = max(len(wa), len(wb), 1)
        value = 1.0 - _edit_distance(wa, wb) / longest
        table.loc[a, b] = table.loc[b, a] = value
    return table


def _edit_distance(a: Sequence[str], b: Sequence[str]) -> int:
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]
