"""Plot builders of the Heads page: they take numbers and labels, never models."""
from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

CLICK_TRACE = 1   # index of the transparent per-cell markers a click selects
MASKED_TRACE = 2  # the crosses on masked heads: a click on one names that head too (to unmask it)


def importance_heatmap(scores: np.ndarray, title: str, value_name: str,
                       masked: Iterable[tuple[int, int]] = ()) -> go.Figure:
    """Layers x heads scores (NaN = pruned, left blank); masked heads crossed out; every cell clickable.

    Plotly heatmaps cannot be selected, so a transparent marker sits on every cell: clicking a
    cell selects that marker, at x = head, y = layer; its customdata (layer, head, score) feeds the hover.
    """
    scores = np.asarray(scores, dtype=float)  # (layers, heads)
    n_layers, n_heads = scores.shape
    heads, layers = np.meshgrid(np.arange(n_heads), np.arange(n_layers))
    present = ~np.isnan(scores)
    fig = go.Figure([
        go.Heatmap(z=scores, x=list(range(n_heads)), y=list(range(n_layers)), colorscale="Viridis",
                   colorbar=dict(title=value_name), hoverinfo="skip"),  # the markers above carry hover and clicks
        go.Scatter(x=heads[present], y=layers[present], mode="markers", showlegend=False, name="select",
                   customdata=np.stack([layers[present], heads[present], scores[present]], axis=-1),
                   marker=dict(symbol="square", size=18, opacity=0.01, color="white"),
                   hovertemplate=(f"layer %{{customdata[0]}} · head %{{customdata[1]}}<br>{value_name} "
                                  "%{customdata[2]:.4f}<extra>click to mask or unmask</extra>")),
    ])
    masked = sorted(set(masked))
    if masked:
        fig.add_trace(go.Scatter(x=[h for _, h in masked], y=[l for l, _ in masked], mode="markers", name="masked",
                                 marker=dict(symbol="x-thin", size=14, line=dict(width=3, color="red")),
                                 hovertemplate="layer %{y} · head %{x}: masked<extra></extra>"))
    # the ranges are the cells' edges: autorange pads for the markers' size and labelled layers -2, -1, 30 and 31
    # of a 30-layer model. Layer 0 on top; no dragmode: Streamlit's point selection then selects on click
    fig.update_layout(title=title, height=min(900, 160 + 28 * n_layers), xaxis_title="head", yaxis_title="layer",
                      xaxis=dict(tickmode="linear", dtick=1, range=[-0.5, n_heads - 0.5]),
                      yaxis=dict(tickmode="linear", dtick=1, range=[n_layers - 0.5, -0.5]),
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.15))
    return fig


def selected_heads(points: Sequence[dict]) -> list[tuple[int, int]]:
    """(layer, head) of the cells a selection event holds: clicks land on the markers or crosses, x = head, y = layer."""
    chosen = []
    for point in points:
        if point.get("curve_number", CLICK_TRACE) not in (CLICK_TRACE, MASKED_TRACE) or "x" not in point or "y" not in point:
            continue  # the heatmap layer itself names nothing
        chosen.append((int(point["y"]), int(point["x"])))
    return chosen


def prediction_bars(prediction: pd.DataFrame, title: str) -> go.Figure:
    """Probabilities of the top outputs before and after masking, side by side."""
    labels = [str(o) for o in prediction["output"]]
    fig = go.Figure([
        go.Bar(name="before", x=labels, y=prediction["before"], hovertemplate="%{x}: %{y:.3f}<extra>before</extra>"),
        go.Bar(name="with heads masked", x=labels, y=prediction["after"],
               hovertemplate="%{x}: %{y:.3f}<extra>masked</extra>"),
    ])
    fig.update_layout(title=title, barmode="group", height=340, yaxis_title="probability", yaxis_range=[0, 1],
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def pruning_curve_figure(table: pd.DataFrame, metric: str, title: str) -> go.Figure:
    """The metric against the share of heads pruned, one marker per step (Michel et al. 2019, Fig. 3)."""
    fig = go.Figure(go.Scatter(
        x=table["fraction_pruned"] * 100, y=table[metric], mode="lines+markers", name=metric,
        customdata=np.stack([table["heads_pruned"], table["parameters"]], axis=-1),
        hovertemplate=(f"%{{x:.0f}}% of heads pruned (%{{customdata[0]}})<br>{metric} %{{y:.4f}}"
                       "<br>%{customdata[1]:,} parameters<extra></extra>")))
    fig.update_layout(title=title, xaxis_title="heads pruned (%)", yaxis_title=metric, height=380,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
