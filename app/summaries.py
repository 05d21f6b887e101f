"""One-line summaries of what a figure shows, in words: read by people, screen readers and tests."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def heatmap_summary(weights: np.ndarray, tokens: Sequence[str], title: str) -> str:
    """The strongest weight of an attention matrix, where it is, and the mean row entropy in nats."""
    weights = np.asarray(weights, dtype=np.float64)  # (n, n)
    n = weights.shape[-1]
    query, key = divmod(int(weights.argmax()), n)
    entropy = float(-(weights * np.log(np.clip(weights, 1e-30, None))).sum(-1).mean())
    return (f"{title}: strongest weight {weights[query, key]:.3f}, from {query}:{tokens[query]} "
            f"to {key}:{tokens[key]}; mean row entropy {entropy:.3f} nats.")
