"""Plot builders: they take numbers and labels, never models."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go


def attention_heatmap(weights: np.ndarray, tokens: list[str], title: str = "") -> go.Figure:
    """Rows are queries (attending), columns keys (attended to); the colour is the weight."""
    labels = _unique(tokens)
    fig = go.Figure(go.Heatmap(z=weights, x=labels, y=labels, colorscale="Blues", zmin=0, zmax=float(max(weights.max(), 1e-9)),
                               hovertemplate="query %{y}<br>key %{x}<br>weight %{z:.3f}<extra></extra>"))
    side = min(900, 180 + 22 * len(tokens))
    fig.update_layout(title=title, height=side, width=side + 60, yaxis_autorange="reversed",
                      xaxis_title="key (attended to)", yaxis_title="query (attending)", margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _unique(tokens: list[str]) -> list[str]:
    """Plotly merges equal category labels; number them by position so repeated tokens stay apart."""
    return [f"{i}:{t}" for i, t in enumerate(tokens)]
