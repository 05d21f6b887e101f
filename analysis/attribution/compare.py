"""Do the methods agree? Spearman rank correlation between methods' scores, and a summary per method."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .methods import METHODS
from .result import AttributionReport


def unit_mask(report: AttributionReport) -> np.ndarray:
    """Units compared: all, except text's special tokens (every baseline keeps them, so IG gives them 0)."""
    n = next(iter(report.results.values())).scores.numel() if report.results else 0
    if report.modality == "text" and report.special and not all(report.special):
        return ~np.asarray(report.special, dtype=bool)
    return np.ones(n, dtype=bool)


def rank_correlation(report: AttributionReport, magnitude: bool = True) -> pd.DataFrame:
    """Methods x methods Spearman correlation of their per-unit scores.

    With `magnitude` (the default) the absolute scores are ranked: the question is whether the
    methods agree on *which* units matter, and saliency and rollout carry no sign. NaN where a
    method gives every unit the same score (no ranking to compare).
    """
    keep = unit_mask(report)
    columns = {}
    for key, result in report.results.items():
        values = result.scores.detach().double().flatten().numpy()[keep]
        columns[METHODS[key].label] = np.abs(values) if magnitude else values
    frame = pd.DataFrame(columns)
    if len(frame) < 2:
        return pd.DataFrame(np.nan, index=frame.columns, columns=frame.columns)
    return frame.corr(method="spearman")


def method_summary(report: AttributionReport) -> pd.DataFrame:
    """One row per method: time, and for integrated gradients the completeness check."""
    rows = []
    for key, r in report.results.items():
        rows.append({
            "method": METHODS[key].label,
            "reference": METHODS[key].reference,
            "seconds": round(r.seconds, 3),
            "signed": r.signed,
            "steps": r.n_steps,
            "convergence delta": r.convergence_delta,
            "F(x) - F(baseline)": r.output_difference,
            "delta / |F(x) - F(baseline)|": r.relative_delta,
            "complete within 5%": r.converged,
            "notes": "; ".join(r.notes),
        })
    return pd.DataFrame(rows)
