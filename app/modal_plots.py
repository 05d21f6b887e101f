"""Plot builders for images and audio: attention drawn on the picture, on the waveform and on time. Data in, figures out."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.colors
import plotly.graph_objects as go
from PIL import Image
from plotly.subplots import make_subplots


# attention drawn on a picture: no attention leaves the patch as it is (fully transparent), more paints it in a
# warmer, denser colour, so the picture stays visible and the colour bar's zero is "nothing drawn"
OVERLAY_SCALE = [[0.0, "rgba(255, 235, 59, 0)"], [0.35, "rgba(255, 152, 0, 0.45)"], [1.0, "rgba(213, 0, 0, 0.8)"]]


def patch_overlay(image: Image.Image, weights: np.ndarray, title: str = "", size: int = 320) -> go.Figure:
    """The image with a (rows, cols) patch attention map laid over it; hover shows each patch's weight.

    Zero attention is transparent and the most attention is a dense red (``OVERLAY_SCALE``), so
    low-attention patches show the image unchanged.
    """
    shown = image.convert("RGB").resize((size, size), Image.Resampling.NEAREST if min(image.size) < 64 else Image.Resampling.BILINEAR)
    rows, cols = weights.shape
    fig = go.Figure(go.Image(z=np.asarray(shown)))
    fig.add_trace(go.Heatmap(z=weights, x0=size / cols / 2, dx=size / cols, y0=size / rows / 2, dy=size / rows,
                             colorscale=OVERLAY_SCALE, zmin=0, zmax=float(max(weights.max(), 1e-9)),
                             colorbar=dict(title="attention"),
                             hovertemplate="patch row %{y:.0f}, col %{x:.0f}<br>attention %{z:.4f}<extra></extra>"))
    fig.update_layout(title=title, width=size + 120, height=size + 60, margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(visible=False), yaxis=dict(visible=False, autorange="reversed"))
    return fig


def alignment_figure(weights: np.ndarray, tokens: Sequence[str], seconds: np.ndarray, waveform: np.ndarray,
                     sampling_rate: int, title: str = "") -> go.Figure:
    """Waveform on top; below, output tokens x audio time (cross-attention), sharing the time axis."""
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.25, 0.75], vertical_spacing=0.04)
    step = max(1, len(waveform) // 4000)  # a few thousand points draw fast and look the same
    t = np.arange(0, len(waveform), step) / sampling_rate
    fig.add_trace(go.Scatter(x=t, y=waveform[::step], mode="lines", line=dict(width=1), name="waveform",
                             hoverinfo="skip"), row=1, col=1)
    labels = [f"{i}:{tok}" for i, tok in enumerate(tokens)]
    fig.add_trace(go.Heatmap(z=weights, x=seconds, y=labels, colorscale="Blues", showscale=False,
                             hovertemplate="%{y}<br>%{x:.2f} s<br>attention %{z:.3f}<extra></extra>"), row=2, col=1)
    fig.update_yaxes(autorange="reversed", row=2, col=1)
    fig.update_xaxes(title_text="time (s)", row=2, col=1)
    fig.update_layout(title=title, height=260 + 22 * len(tokens), showlegend=False, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def audio_attention_figure(weights: np.ndarray, seconds: np.ndarray, title: str = "") -> go.Figure:
    """Encoder self-attention over audio time: query time (rows) x key time (columns)."""
    fig = go.Figure(go.Heatmap(z=weights, x=seconds, y=seconds, colorscale="Viridis",
                               hovertemplate="query %{y:.2f} s<br>key %{x:.2f} s<br>%{z:.4f}<extra></extra>"))
    fig.update_layout(title=title, height=460, yaxis_autorange="reversed", xaxis_title="key time (s)",
                      yaxis_title="query time (s)", margin=dict(l=10, r=10, t=40, b=10))
    return fig


def agreement_figure(table) -> go.Figure:
    """Pairwise agreement between models' answers (0..1)."""
    names = list(table.index)
    fig = go.Figure(go.Heatmap(z=table.to_numpy(float), x=names, y=names, colorscale="Greens", zmin=0, zmax=1,
                               text=np.round(table.to_numpy(float), 2), texttemplate="%{text}",
                               hovertemplate="%{y} vs %{x}: %{z:.2f}<extra></extra>"))
    fig.update_layout(height=160 + 40 * len(names), yaxis_autorange="reversed", margin=dict(l=10, r=10, t=30, b=10))
    return fig


LOAD_SHOWN_FROM_MS = 1.0  # a load quicker than this was a cache hit: no bar (the table has the number)


def latency_figure(timings) -> go.Figure:
    """Per model, on a log axis (load takes seconds, a call milliseconds): load, first call, and the steady state
    (median of the repeats, whiskers from the fastest to the slowest repeat) where it was measured.

    ``timings`` is `analysis.compare_report.timing_frame`'s table.
    """
    names = list(timings["model"])
    load = [v if v >= LOAD_SHOWN_FROM_MS else None for v in timings["load_ms"]]
    steady = [None if np.isnan(v) else v for v in timings["steady_ms"]]
    fig = go.Figure()
    fig.add_trace(go.Bar(name="load", x=load, y=names, orientation="h", marker_color="#c7c7c7",
                         hovertemplate="%{y}<br>load: %{x:.1f} ms<extra></extra>"))
    fig.add_trace(go.Bar(name="first call", x=list(timings["first_call_ms"]), y=names, orientation="h",
                         marker_color="#ff7f0e", hovertemplate="%{y}<br>first call: %{x:.1f} ms<extra></extra>"))
    plus = [None if s is None else hi - s for s, hi in zip(steady, timings["steady_max_ms"])]
    minus = [None if s is None else s - lo for s, lo in zip(steady, timings["steady_min_ms"])]
    fig.add_trace(go.Bar(name="steady state (median)", x=steady, y=names, orientation="h", marker_color="#1f77b4",
                         error_x=dict(type="data", array=plus, arrayminus=minus, symmetric=False),
                         customdata=list(timings["repeats"]),
                         hovertemplate="%{y}<br>steady state: %{x:.1f} ms, median of %{customdata} calls"
                                       "<extra></extra>"))
    # bars on a log axis start at its left edge: put that edge on a decade below every value, so a bar's length
    # reads as "how many tens of ms from there" and a 1.0 s load is not drawn as a stub beside a 3.0 s call
    shown = [v for v in [*load, *timings["first_call_ms"], *timings["steady_max_ms"]]
             if v is not None and np.isfinite(v) and v > 0]
    x_range = ([np.floor(np.log10(min(shown) / 2)), np.log10(max(shown) * 1.5)] if shown else None)
    fig.update_layout(barmode="group", height=190 + 50 * len(names), xaxis_title="milliseconds (log scale)",
                      xaxis_type="log", xaxis_range=x_range, yaxis_autorange="reversed",
                      legend=dict(orientation="h", x=0, y=1.02, xanchor="left", yanchor="bottom"),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def attention_profile_figure(profile) -> go.Figure:
    """Mean attention entropy per layer, one line per model, layers placed by relative depth (0 first, 1 last)."""
    palette = plotly.colors.qualitative.D3  # distinct hues: Streamlit's theme would draw every line in blues
    fig = go.Figure()
    for i, (name, rows) in enumerate(profile.groupby("model", sort=False)):
        fig.add_trace(go.Scatter(x=rows["depth"], y=rows["entropy"], mode="lines+markers", name=name,
                                 line=dict(color=palette[i % len(palette)]),
                                 customdata=rows[["layer", "on_first_position"]].to_numpy(),
                                 hovertemplate=(f"{name}<br>layer %{{customdata[0]}}: entropy %{{y:.2f}} nats, "
                                                "%{customdata[1]:.0%} on position 0<extra></extra>")))
    fig.update_layout(height=300, xaxis_title="relative depth (first layer 0, last 1)",
                      yaxis_title="mean attention entropy (nats)", legend=dict(orientation="h", y=-0.3),
                      margin=dict(l=10, r=10, t=20, b=10))
    return fig
