"""Cross-attention as an alignment: target tokens (rows) over source tokens (columns). Data in, figures out."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .plots import AUTO, _unique as _numbered, colour_scale  # numbered, HTML-escaped labels


def alignment_heatmap(weights: np.ndarray, targets: Sequence[str], sources: Sequence[str], title: str = "",
                      scale: str = AUTO) -> go.Figure:
    """(targets, sources) weights: each row is the decoding step that wrote that target token."""
    weights = np.asarray(weights, dtype=float)
    colours = colour_scale(weights, scale)
    colorbar = dict(title="weight")
    if colours.tickvals is not None:
        colorbar.update(tickvals=colours.tickvals, ticktext=colours.ticktext)
    fig = go.Figure(go.Heatmap(z=colours.z, x=_numbered(sources), y=_numbered(targets), colorscale="Blues",
                               zmin=colours.zmin, zmax=colours.zmax, customdata=weights, colorbar=colorbar,
                               hovertemplate="writing %{y}<br>source %{x}<br>weight %{customdata:.4f}<extra></extra>"))
    height = min(900, 200 + 26 * len(targets))
    width = min(1100, 260 + 40 * len(sources))
    fig.update_layout(title=title, height=height, width=width, yaxis_autorange="reversed",
                      xaxis_title="source token (encoder)", yaxis_title="target token being written",
                      margin=dict(l=10, r=10, t=40, b=10), meta=dict(colour_scale=colours.kind, note=colours.note))
    return fig


def alignment_grid(patterns: np.ndarray, head_names: Sequence[str], targets: Sequence[str],
                   sources: Sequence[str], title: str = "") -> go.Figure:
    """Small multiples: one alignment per head (patterns (H, targets, sources)), on one linear 0-1 scale."""
    patterns = np.asarray(patterns, dtype=float)
    columns = min(len(head_names), 5)
    rows = -(-len(head_names) // columns)
    fig = make_subplots(rows=rows, cols=columns, subplot_titles=list(head_names), horizontal_spacing=0.03,
                        vertical_spacing=0.12 if rows > 1 else 0.0)
    x, y = _numbered(sources), _numbered(targets)
    for i, pattern in enumerate(patterns):
        fig.add_trace(go.Heatmap(z=pattern, x=x, y=y, colorscale="Blues", zmin=0.0, zmax=1.0, showscale=i == 0,
                                 colorbar=dict(title="weight"), name=head_names[i],
                                 hovertemplate=f"{head_names[i]}<br>writing %{{y}}<br>source %{{x}}"
                                               "<br>weight %{z:.4f}<extra></extra>"),
                      row=i // columns + 1, col=i % columns + 1)
    fig.update_yaxes(autorange="reversed", showticklabels=False)
    fig.update_yaxes(showticklabels=True, col=1)
    fig.update_xaxes(tickangle=-60, tickfont=dict(size=9))
    fig.update_layout(title=title, height=min(1400, rows * (150 + 18 * len(targets)) + 60),
                      margin=dict(l=10, r=10, t=60, b=10))
    return fig
