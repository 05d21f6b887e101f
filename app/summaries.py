"""One-line summaries of what a figure shows, in words: read by people, screen readers and tests."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .head_labels import head_label


def heatmap_summary(weights: np.ndarray, tokens: Sequence[str], title: str) -> str:
    """The strongest weight of an attention matrix, where it is, and the mean row entropy in nats."""
    weights = np.asarray(weights, dtype=np.float64)  # (n, n)
    n = weights.shape[-1]
    query, key = divmod(int(weights.argmax()), n)
    entropy = float(-(weights * np.log(np.clip(weights, 1e-30, None))).sum(-1).mean())
    return (f"{title}: strongest weight {weights[query, key]:.3f}, from {query}:{tokens[query]} "
            f"to {key}:{tokens[key]}; mean row entropy {entropy:.3f} nats.")


def scores_are_equal(scores: Sequence[float], tolerance: float = 1e-12) -> bool:
    """True when every score is the same (leave-one-out accuracy that no single head moves, say)."""
    values = np.asarray(scores, dtype=np.float64)
    return values.size > 0 and float(values.max() - values.min()) <= tolerance


def importance_summary(frame, value_name: str, n_examples: int, metric: str | None = None,
                       baseline: float | None = None, method: str = "") -> str:
    """The highest and lowest head of a ranked table (layer, head, score), or, when every score is equal,
    that no head stands out: naming a "highest" head among equal scores would be reading order as a result."""
    tail = f"{n_examples} sentences" + (f"; baseline {metric} {baseline:.4f}" if baseline is not None else "") + "."
    scores = frame["score"].to_numpy(dtype=np.float64)
    if scores_are_equal(scores):
        why = ""
        if method == "ablation":
            why = (f" Masking any one head alone changes the {metric} by the same amount on these sentences"
                   + (" (accuracy moves in whole sentences; the loss metric shows smaller changes)"
                      if metric == "accuracy" else "") + ".")
        return (f"Every head scores {scores[0]:.4f} ({value_name}): no head is higher or lower than another, so none "
                f"is named.{why} {tail}")
    top, low = frame.iloc[0], frame.iloc[-1]
    return (f"Highest {value_name}: {head_label(int(top['layer']), int(top['head']))} ({top['score']:.4f}); lowest: "
            f"{head_label(int(low['layer']), int(low['head']))} ({low['score']:.4f}); {tail}")


def input_warnings(warnings: Sequence[str], *_unused) -> list[str]:
    """A run's warnings as a page shows them: as the core words them (models.tokenization.truncation_warning
    names whose limit cut a text). Kept so that a page that still passes the model's limits keeps working."""
    return list(warnings)
