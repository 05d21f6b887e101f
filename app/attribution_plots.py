"""Plot builders for the Attribution page: numbers in, plotly figures out (never a model).

Every method's scores are scaled to [-1, 1] by its largest |score| (special tokens left out),
so methods with different units sit on one colour scale: green pushed the target up, magenta
pushed it down, and magnitude-only methods run from white to green.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from analysis.attribution.render import normalise

DIVERGING = [[0.0, "rgb(208,28,139)"], [0.5, "rgb(255,255,255)"], [1.0, "rgb(26,150,65)"]]


def methods_token_heatmap(tokens: Sequence[str], scores: Sequence[np.ndarray], labels: Sequence[str],
                          signed: Sequence[bool], special: Sequence[bool] = ()) -> go.Figure:
    """Methods (rows) x tokens (columns), each row scaled to its largest |score|; raw scores in the hover."""
    keep = ~np.asarray(special, dtype=bool) if len(special) and not all(special) else None
    scaled = np.stack([normalise(s, sgn, keep) for s, sgn in zip(scores, signed)])  # (methods, T)
    raw = np.stack([np.asarray(s, dtype=float) for s in scores])
    columns = [f"{i}:{t}" for i, t in enumerate(tokens)]  # plotly merges equal labels: keep positions
    fig = go.Figure(go.Heatmap(z=scaled, x=columns, y=list(labels), customdata=raw, colorscale=DIVERGING,
                               zmin=-1, zmax=1, colorbar=dict(title="scaled"),
                               hovertemplate="%{y}<br>%{x}<br>score %{customdata:.4g}<extra></extra>"))
    fig.update_layout(height=140 + 34 * len(labels), margin=dict(l=10, r=10, t=30, b=10), yaxis_autorange="reversed",
                      title="All methods, each scaled to its largest |score|")
    return fig


def image_heatmap(image: np.ndarray | None, scores: np.ndarray, signed: bool, title: str) -> go.Figure:
    """The (H, W) scores over a grey copy of the image."""
    scaled = normalise(scores, signed)
    fig = go.Figure()
    if image is not None:
        grey = np.asarray(image, dtype=float).mean(axis=-1)
        fig.add_trace(go.Heatmap(z=grey, colorscale="gray", showscale=False, hoverinfo="skip"))
    fig.add_trace(go.Heatmap(z=scaled, customdata=np.asarray(scores, dtype=float), colorscale=DIVERGING, zmin=-1, zmax=1,
                             opacity=0.65 if image is not None else 1.0, showscale=False,
                             hovertemplate="row %{y}, column %{x}<br>score %{customdata:.4g}<extra></extra>"))
    fig.update_layout(title=title, height=300, width=300, margin=dict(l=5, r=5, t=35, b=5),
                      yaxis=dict(autorange="reversed", scaleanchor="x", visible=False), xaxis=dict(visible=False))
    return fig


def waveform_heatmap(waveform: np.ndarray, sampling_rate: int, scores: np.ndarray, seconds_per_frame: float,
                     signed: bool, title: str) -> go.Figure:
    """A time heatmap of the scores behind the waveform."""
    scaled = normalise(scores, signed)
    times = (np.arange(len(scaled)) + 0.5) * seconds_per_frame
    wave = np.asarray(waveform, dtype=float)
    step = max(1, len(wave) // 4000)  # a few thousand points draw fast and look the same
    wave_t = np.arange(0, len(wave), step) / sampling_rate
    peak = float(np.abs(wave).max()) or 1.0
    fig = go.Figure(go.Heatmap(z=[scaled], x=times, y=[0.0], customdata=[np.asarray(scores, dtype=float)],
                               colorscale=DIVERGING, zmin=-1, zmax=1, showscale=False,
                               hovertemplate="%{x:.2f} s<br>score %{customdata:.4g}<extra></extra>"))
    fig.add_trace(go.Scatter(x=wave_t, y=wave[::step] / peak, mode="lines", line=dict(color="black", width=1),
                             hoverinfo="skip", yaxis="y2"))
    fig.update_layout(title=title, height=200, margin=dict(l=10, r=10, t=35, b=30), showlegend=False,
                      xaxis_title="seconds", yaxis=dict(visible=False),
                      yaxis2=dict(overlaying="y", range=[-1.05, 1.05], visible=False))
    return fig


def correlation_heatmap(corr, title: str) -> go.Figure:
    fig = go.Figure(go.Heatmap(z=corr.to_numpy(), x=list(corr.columns), y=list(corr.index), zmin=-1, zmax=1,
                               colorscale="RdBu", text=np.round(corr.to_numpy(), 2), texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}: %{z:.3f}<extra></extra>"))
    side = 160 + 60 * len(corr)
    fig.update_layout(title=title, height=side, width=side + 120, yaxis_autorange="reversed",
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig
