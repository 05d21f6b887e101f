"""Plot builders: they take numbers and labels, never models."""
from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import plotly.graph_objects as go


AUTO, LINEAR, CLIPPED, LOG = "auto", "linear", "clipped", "log"
COLOUR_SCALES = {AUTO: "Auto (readable)", LINEAR: "Linear 0 to max", CLIPPED: "Clipped at the 99th percentile",
                 LOG: "Logarithmic"}
READABLE_SHARE = 0.10    # a scale is readable when at least this share of the weights gets a visible colour
VISIBLE = 0.10           # ... that is, at least this far along the colour bar
CLIP_QUANTILE = 0.99
OUTLIER_RATIO = 3.0      # "auto" clips when the largest weight is this many times the 99th percentile


@dataclass(frozen=True)
class ColourScale:
    """How attention weights are coloured: the values drawn (z), their range, and the colour bar's ticks."""
    kind: str                                # LINEAR, CLIPPED or LOG
    z: np.ndarray                            # what the heatmap draws (log10 of the weights for LOG)
    zmin: float
    zmax: float
    tickvals: list[float] | None = None      # colour bar ticks, in z units, and their text (weights)
    ticktext: list[str] | None = None
    note: str = ""                           # one sentence for the page: what the colours mean

    def visible_share(self, weights: np.ndarray) -> float:
        """The share of nonzero weights drawn at least ``VISIBLE`` along the colour bar."""
        span = max(self.zmax - self.zmin, 1e-12)
        drawn = (np.clip(self.z, self.zmin, self.zmax) - self.zmin) / span
        present = np.asarray(weights) > 0
        return float((drawn[present] >= VISIBLE).mean()) if present.any() else 1.0


def colour_scale(weights: np.ndarray, kind: str = AUTO) -> ColourScale:
    """Colours for an attention matrix: "linear", "clipped", "log" or "auto".

    At long inputs a few weights (the first token, an "attention sink", or a token attending to itself) are
    many times the rest, and a linear 0-to-max scale draws ~99 % of the cells white (smollm2, 256 tokens: 1.8 %
    of the weights get a visible colour). "auto" then clips at the 99th percentile of the nonzero weights, which
    keeps the scale linear and shows the structure (previous-token diagonals, columns); "log" shows every decade.
    """
    weights = np.asarray(weights, dtype=float)
    top = float(max(weights.max(), 1e-9))
    nonzero = weights[weights > 0]
    if kind == LINEAR or nonzero.size == 0:
        return ColourScale(LINEAR, weights, 0.0, top, note=f"Linear colour scale from 0 to the largest weight ({top:.3f}).")
    if kind in (CLIPPED, AUTO):
        cap = float(np.quantile(nonzero, CLIP_QUANTILE))
        above = float((weights > cap).mean())
        clipped = ColourScale(CLIPPED, weights, 0.0, max(cap, 1e-9),
                              note=f"Colours clipped at the 99th percentile of the weights ({cap:.3f}): the {above:.1%} "
                                   f"above it, up to {top:.3f}, are drawn in the darkest colour; hover for values.")
        if kind == CLIPPED:
            return clipped
        linear = colour_scale(weights, LINEAR)
        if top <= OUTLIER_RATIO * cap or linear.visible_share(weights) >= READABLE_SHARE:
            return linear  # no few weights dwarf the rest: the plain scale reads well
        return clipped
    floor = max(float(nonzero.min()), top * 1e-4)  # four decades below the largest weight at most
    low, high = np.log10(floor), np.log10(top)
    decades = list(range(int(np.ceil(low)), int(np.floor(high)) + 1)) or [round(high)]
    return ColourScale(LOG, np.log10(np.clip(weights, floor, None)), float(low), float(high),
                       tickvals=[float(d) for d in decades], ticktext=[f"{10.0 ** d:g}" for d in decades],
                       note=f"Logarithmic colour scale from {floor:.1e} to {top:.3f}: each step of the bar is ten "
                            "times the weight; hover for values.")


def attention_heatmap(weights: np.ndarray, tokens: list[str], title: str = "", scale: str = AUTO) -> go.Figure:
    """Rows are queries (attending), columns keys (attended to); the colour is the weight (``colour_scale``)."""
    labels = _unique(tokens)
    weights = np.asarray(weights, dtype=float)
    colours = colour_scale(weights, scale)
    colorbar = dict(title="weight")
    if colours.tickvals is not None:
        colorbar.update(tickvals=colours.tickvals, ticktext=colours.ticktext)
    fig = go.Figure(go.Heatmap(z=colours.z, x=labels, y=labels, colorscale="Blues", zmin=colours.zmin,
                               zmax=colours.zmax, customdata=weights, colorbar=colorbar,
                               hovertemplate="query %{y}<br>key %{x}<br>weight %{customdata:.4f}<extra></extra>"))
    side = min(900, 180 + 22 * len(tokens))
    fig.update_layout(title=title, height=side, width=side + 60, yaxis_autorange="reversed",
                      xaxis_title="key (attended to)", yaxis_title="query (attending)", margin=dict(l=10, r=10, t=40, b=10),
                      meta=dict(colour_scale=colours.kind, note=colours.note))
    return fig


def matrix_heatmap(matrix: np.ndarray, x_labels: Sequence[str], y_labels: Sequence[str], title: str = "",
                   x_title: str = "", y_title: str = "", colorscale: str = "Viridis",
                   zmin: float | None = None, zmax: float | None = None, value_name: str = "value") -> go.Figure:
    """A labelled heatmap (cosine similarities, norms per layer and token, rollout)."""
    matrix = np.asarray(matrix, dtype=float)
    fig = go.Figure(go.Heatmap(z=matrix, x=list(x_labels), y=list(y_labels), colorscale=colorscale, zmin=zmin, zmax=zmax,
                               hovertemplate=f"%{{y}} · %{{x}}<br>{value_name} %{{z:.3f}}<extra></extra>"))
    height = min(900, 200 + 20 * len(y_labels))
    fig.update_layout(title=title, height=height, yaxis_autorange="reversed", xaxis_title=x_title, yaxis_title=y_title,
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def head_stat_grid(stats: pd.DataFrame, column: str, n_heads: int) -> go.Figure:
    """Layers x heads grid of one per-head statistic; pruned heads stay blank."""
    layers = sorted(stats["layer"].unique())
    grid = np.full((len(layers), n_heads), np.nan)
    for row in stats.itertuples(index=False):
        grid[layers.index(row.layer), row.head] = getattr(row, column)
    return matrix_heatmap(grid, [str(h) for h in range(n_heads)], [str(l) for l in layers], title=f"{column} per head",
                          x_title="head", y_title="layer", colorscale="Viridis", value_name=column)


def token_bar(values: np.ndarray, tokens: Sequence[str], title: str = "", value_name: str = "share") -> go.Figure:
    """One bar per token (e.g. how much of each input token reaches a position, by rollout)."""
    fig = go.Figure(go.Bar(x=_unique(list(tokens)), y=np.asarray(values, dtype=float),
                           hovertemplate=f"%{{x}}<br>{value_name} %{{y:.3f}}<extra></extra>"))
    fig.update_layout(title=title, height=320, yaxis_title=value_name, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def norms_figure(norms: np.ndarray) -> go.Figure:
    """Residual-stream norm per layer: median over tokens with the min-max band, and the mean."""
    norms = np.asarray(norms, dtype=float)  # (L+1, n)
    layers = list(range(norms.shape[0]))
    fig = go.Figure([
        go.Scatter(x=layers, y=norms.max(1), mode="lines", line=dict(width=0), showlegend=False, hoverinfo="skip"),
        go.Scatter(x=layers, y=norms.min(1), mode="lines", line=dict(width=0), fill="tonexty",
                   fillcolor="rgba(31,119,180,0.15)", name="min–max over tokens"),
        go.Scatter(x=layers, y=np.median(norms, 1), mode="lines+markers", name="median over tokens"),
        go.Scatter(x=layers, y=norms.mean(1), mode="lines", line=dict(dash="dot"), name="mean over tokens"),
    ])
    fig.update_layout(title="Residual-stream norm per layer", xaxis_title="layer (0 = embeddings)",
                      yaxis_title="L2 norm", height=380, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def lens_figure(top_tokens: Sequence[Sequence[str]], top_probs: np.ndarray, layers: Sequence[int],
                positions: Sequence[int], input_tokens: Sequence[str], hover: Sequence[Sequence[str]] | None = None) -> go.Figure:
    """The logit-lens picture: a cell per (layer, position) with its top token, coloured by its probability."""
    probs = np.asarray(top_probs, dtype=float)  # (layers, positions)
    fig = go.Figure(go.Heatmap(
        z=probs, x=[f"{p}:{t}" for p, t in zip(positions, input_tokens)], y=[str(l) for l in layers],
        text=[[str(t) for t in row] for row in top_tokens], texttemplate="%{text}", textfont=dict(size=10),
        customdata=hover, colorscale="Blues", zmin=0, zmax=1,
        hovertemplate=("layer %{y} · input %{x}<br>%{customdata}<extra></extra>" if hover is not None
                       else "layer %{y} · input %{x}<br>top %{text} (%{z:.3f})<extra></extra>")))
    fig.update_layout(title="Logit lens: each layer's top next-token guess", xaxis_title="input position",
                      yaxis_title="layer (0 = embeddings)", height=min(1100, 160 + 24 * len(layers)),
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def pca_figure(frame: pd.DataFrame, explained: Sequence[float], max_trajectories: int = 24) -> go.Figure:
    """Token states in the PCA plane, coloured by layer; each token's path across layers drawn as a line.

    Past ``max_trajectories`` tokens only points are drawn: hundreds of paths are a scribble.
    """
    fig = go.Figure()
    positions = sorted(frame["position"].unique())
    if len(positions) <= max_trajectories:
        for position in positions:
            path = frame[frame["position"] == position].sort_values("layer")
            fig.add_trace(go.Scatter(x=path["pc1"], y=path["pc2"], mode="lines", line=dict(width=1, color="lightgray"),
                                     hoverinfo="skip", showlegend=False))
    scatter = go.Scattergl if len(frame) > 2000 else go.Scatter
    fig.add_trace(scatter(
        x=frame["pc1"], y=frame["pc2"], mode="markers", showlegend=False,
        marker=dict(color=frame["layer"], colorscale="Viridis", size=7, colorbar=dict(title="layer")),
        customdata=np.stack([frame["layer"], frame["position"], frame["token"].astype(str)], axis=1),
        hovertemplate="layer %{customdata[0]} · %{customdata[1]}:%{customdata[2]}<extra></extra>"))
    fig.update_layout(title=f"PCA of token states (PC1 {explained[0]:.0%}, PC2 {explained[1]:.0%} of variance)",
                      xaxis_title="PC1", yaxis_title="PC2", height=520, margin=dict(l=10, r=10, t=40, b=10))
    return fig


def _unique(tokens: Sequence[str]) -> list[str]:
    """Plotly merges equal category labels; number them by position so repeated tokens stay apart. Escaped,
    because plotly reads labels as HTML: "</s>" and "<s>" (T5's, RoBERTa's) would vanish as tags."""
    return [f"{i}:{html.escape(t, quote=False)}" for i, t in enumerate(tokens)]
