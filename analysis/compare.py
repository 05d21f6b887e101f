"""Side by side: several pipelines' results on one input, their latency, agreement, and a compact attention summary.

Pure functions over pipeline results (each carries `.trace` and `.seconds`).
"""
from __future__ import annotations

import math
from itertools import combinations
from typing import Any, Mapping, Sequence

import pandas as pd
import torch


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


def _summarised_patterns(trace: Any) -> list[torch.Tensor]:
    """The per-layer patterns a summary reads: an encoder's (speech, images) or the model's own; pruned-empty layers skipped."""
    return [a for a in (trace.encoder_attentions or trace.attentions) if a.shape[1]]


def _entropy(pattern: torch.Tensor) -> float:
    """Mean over heads and queries of the entropy (nats) of the first example's attention rows."""
    p = pattern[0].float().clamp_min(1e-12)  # (H, T, S)
    return float(-(p * p.log()).sum(-1).mean())


def attention_summary(trace: Any) -> dict[str, float]:
    """Mean attention entropy (nats, over keys) of the first and last layer, and the share of attention on position 0.

    Low entropy = focused heads; a high share on position 0 ([CLS], <s>) is the usual "attention sink".
    """
    attentions = _summarised_patterns(trace)
    if not attentions:
        return {"entropy_first": math.nan, "entropy_last": math.nan, "on_first_position": math.nan}
    last = attentions[-1][0].float()  # (H, T, S)
    return {"entropy_first": _entropy(attentions[0]), "entropy_last": _entropy(attentions[-1]),
            "on_first_position": float(last[..., 0].mean())}


def attention_profile(results: Mapping[str, Any]) -> pd.DataFrame:
    """Long form, one row per model and layer: mean entropy and share on position 0, with depth 0..1 so that
    models of different depths line up (first layer 0, last layer 1)."""
    rows = []
    for name, result in results.items():
        trace = getattr(result, "trace", None)
        attentions = _summarised_patterns(trace) if trace is not None else []
        for layer, pattern in enumerate(attentions):
            rows.append({"model": name, "layer": layer, "depth": layer / max(1, len(attentions) - 1),
                         "entropy": _entropy(pattern), "on_first_position": float(pattern[0].float()[..., 0].mean())})
    return pd.DataFrame(rows, columns=["model", "layer", "depth", "entropy", "on_first_position"])


def comparison_table(results: Mapping[str, Any]) -> pd.DataFrame:
    """One row per model: answer, score, latency, attention summary, layers x heads."""
    rows = []
    for name, result in results.items():
        trace = getattr(result, "trace", None)
        summary = attention_summary(trace) if trace is not None else {}
        n_layers = len(_summarised_patterns(trace)) if trace is not None else 0
        rows.append({"model": name, "answer": top_answer(result), "score": top_score(result),
                     "latency_ms": 1000 * float(getattr(result, "seconds", math.nan)),
                     "layers": n_layers, **summary})
    return pd.DataFrame(rows)


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
