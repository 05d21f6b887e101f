"""Plot builders of the Datasets page: they take result tables, never models."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go


def slice_bars(slices: pd.DataFrame, column: str, metric: str) -> go.Figure:
    """One group of bars per slice value of `column`, one bar per model: the metric on that slice."""
    rows = slices[slices["slice"] == column]
    fig = go.Figure()
    for model, mine in rows.groupby("model", sort=False):
        fig.add_trace(go.Bar(name=str(model), x=mine["value"].astype(str), y=mine[metric],
                             customdata=mine["n_examples"],
                             hovertemplate=f"%{{x}}: {metric} %{{y:.4f}} (%{{customdata}} examples)<extra>{model}</extra>"))
    fig.update_layout(title=f"{metric} by {column}", barmode="group", height=340, yaxis_title=metric,
                      xaxis_title=column, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def pruning_curve_with_baseline(curve: pd.DataFrame, spread: pd.DataFrame, metric: str) -> go.Figure:
    """The importance-ordered curve over the random-order baseline: its mean, and the band from min to max over seeds."""
    ours = curve[curve["order"] == "importance"]
    fig = go.Figure()
    if len(spread):
        x = (spread["fraction_pruned"] * 100).tolist()
        fig.add_trace(go.Scatter(x=x + x[::-1], y=spread[f"{metric}_max"].tolist() + spread[f"{metric}_min"].tolist()[::-1],
                                 fill="toself", mode="lines", line=dict(width=0), fillcolor="rgba(150,150,150,0.3)",
                                 name=f"random order: min-max over {int(spread['seeds'].max())} seeds", hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=x, y=spread[f"{metric}_mean"], mode="lines+markers", name="random order: mean",
                                 line=dict(dash="dash", color="gray"),
                                 customdata=spread[f"{metric}_std"],
                                 hovertemplate=f"%{{x:.0f}}%: {metric} %{{y:.4f}} ± %{{customdata:.4f}}<extra>random</extra>"))
    fig.add_trace(go.Scatter(x=ours["fraction_pruned"] * 100, y=ours[metric], mode="lines+markers",
                             name="least important first", customdata=np.stack([ours["heads_pruned"]], axis=-1),
                             hovertemplate=f"%{{x:.0f}}% (%{{customdata[0]}} heads): {metric} %{{y:.4f}}<extra></extra>"))
    fig.update_layout(title=f"{metric} as heads are pruned", xaxis_title="heads pruned (%)", yaxis_title=metric,
                      height=380, margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.25))
    return fig


def token_bars(tokens: pd.DataFrame, count: int = 25) -> go.Figure:
    """The tokens with the largest mean |attribution|, with how often each occurred."""
    top = tokens.head(count)
    fig = go.Figure(go.Bar(x=top["token"].astype(str), y=top["mean_abs"], customdata=top["count"],
                           hovertemplate="%{x}: mean |a| %{y:.4g} over %{customdata} occurrences<extra></extra>"))
    fig.update_layout(title="Mean |attribution| per token", xaxis_title="token", yaxis_title="mean |attribution|",
                      height=340, margin=dict(l=10, r=10, t=40, b=10))
    return fig
