"""Downloads: figures as PNG or standalone HTML, numbers as CSV. All offline, no model in sight.

PNG is drawn with matplotlib (Agg) rather than plotly's kaleido, which needs a browser process
per export; the plotly figure's own camera button also saves a PNG in the browser. The HTML
export inlines plotly.js, so the file opens on a machine with no network.
"""
from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def figure_html(fig: go.Figure) -> bytes:
    """A standalone HTML page of the figure with plotly.js inlined (works offline, ~4.5 MB)."""
    return fig.to_html(include_plotlyjs=True, full_html=True).encode("utf-8")


def frame_csv(frame: pd.DataFrame, index: bool = False) -> bytes:
    """The one way the app writes CSV: every table may carry a token or text someone typed, so formulas are
    always neutralised (see `neutralise_formulas`)."""
    return neutralise_formulas(frame).to_csv(index=index).encode("utf-8")


# A cell a spreadsheet would read as a formula (OWASP "CSV injection"): =, +, - and @ start one, and a tab or a
# carriage return before them can hide it.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _neutral(value: object) -> object:
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy where every text cell, column name and index label that a spreadsheet would run as a formula starts
    with a quote instead ("=1+1" -> "'=1+1"), as OWASP advises. Numbers stay numbers: -0.5 is not text."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_neutral)
    out.columns = [_neutral(c) for c in out.columns]
    out.index = out.index.map(_neutral) if out.index.dtype == object else out.index
    return out


def safe_frame_csv(frame: pd.DataFrame, index: bool = False) -> bytes:
    """The same as `frame_csv` (kept for the pages that name it)."""
    return frame_csv(frame, index=index)


def matrix_frame(matrix: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str]) -> pd.DataFrame:
    """A labelled square (or rectangular) matrix; labels carry the position so repeated tokens stay apart."""
    rows = [f"{i}:{t}" for i, t in enumerate(row_labels)]
    columns = [f"{i}:{t}" for i, t in enumerate(column_labels)]
    return pd.DataFrame(np.asarray(matrix), index=pd.Index(rows, name="query"), columns=columns)


def matrix_png(matrix: np.ndarray, row_labels: Sequence[str], column_labels: Sequence[str], title: str = "",
               xlabel: str = "", ylabel: str = "", cmap: str = "Blues", vmin: float | None = 0.0,
               vmax: float | None = None) -> bytes:
    """A heatmap PNG of a matrix with token labels (labels thinned out past 64 so they stay legible)."""
    import matplotlib

    matrix = np.asarray(matrix, dtype=float)
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # the OO API: no global pyplot state shared between sessions

    side = min(14.0, 3.0 + 0.22 * max(matrix.shape))
    fig = Figure(figsize=(side + 1.5, side), dpi=110)
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax if vmax is not None else float(matrix.max() or 1.0),
                      aspect="auto", interpolation="nearest")
    for axis, labels, setter in ((0, row_labels, ax.set_yticks), (1, column_labels, ax.set_xticks)):
        step = max(1, len(labels) // 64)
        ticks = list(range(0, len(labels), step))
        setter(ticks, [str(labels[i]) for i in ticks], fontsize=7, **({"rotation": 90} if axis == 1 else {}))
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.04)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
