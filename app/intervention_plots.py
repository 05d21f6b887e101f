"""Plot builders of the Interventions page: they take numbers and labels, never models."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

CLICK_TRACE = 1  # the transparent per-cell markers a click selects (plotly heatmaps themselves cannot be selected)


def patching_heatmap(values: np.ndarray, x_labels: Sequence[str], title: str, value_name: str,
                     x_title: str, selected: tuple[int, int] | None = None, zmid: float | None = None) -> go.Figure:
    """Layers x positions (or heads) of patched metrics; NaN cells stay blank; every cell clickable.

    Blue is towards the clean answer, red away from it, centred on ``zmid`` (the corrupted run's metric,
    or 0 when normalised). Clicking selects the marker on a cell: x = column index, y = layer.
    """
    values = np.asarray(values, dtype=float)  # (layers, columns)
    n_layers, n_columns = values.shape
    columns, layers = np.meshgrid(np.arange(n_columns), np.arange(n_layers))
    present = ~np.isnan(values)
    labels = np.asarray(list(x_labels), dtype=object)
    finite = values[present]
    span = float(np.max(np.abs(finite - (zmid or 0.0)))) if finite.size else 1.0
    centre = zmid or 0.0
    fig = go.Figure([
        go.Heatmap(z=values, x=list(range(n_columns)), y=list(range(n_layers)), colorscale="RdBu", zmid=centre,
                   zmin=centre - (span or 1.0), zmax=centre + (span or 1.0),
                   colorbar=dict(title=value_name), hoverinfo="skip"),
        go.Scatter(x=columns[present], y=layers[present], mode="markers", showlegend=False, name="select",
                   customdata=np.stack([layers[present], labels[columns[present]], values[present]], axis=-1),
                   marker=dict(symbol="square", size=16, opacity=0.01, color="white"),
                   hovertemplate=(f"layer %{{customdata[0]}} · %{{customdata[1]}}<br>{value_name} "
                                  "%{customdata[2]:.4f}<extra>click to see this patched run</extra>")),
    ])
    if selected is not None:
        fig.add_trace(go.Scatter(x=[selected[1]], y=[selected[0]], mode="markers", name="shown below",
                                 showlegend=False, hoverinfo="skip",
                                 marker=dict(symbol="square-open", size=18, color="black", line=dict(width=3))))
    step = max(1, n_columns // 40)
    fig.update_layout(title=title, height=min(900, 260 + 24 * n_layers), xaxis_title=x_title, yaxis_title="layer",
                      yaxis_autorange="reversed", margin=dict(l=10, r=10, t=40, b=10),
                      xaxis=dict(tickmode="array", tickvals=list(range(0, n_columns, step)),
                                 ticktext=[str(labels[i]) for i in range(0, n_columns, step)], tickangle=-45),
                      yaxis=dict(tickmode="linear", dtick=max(1, n_layers // 30)))
    return fig


def selected_cells(points: Sequence[dict]) -> list[tuple[int, int]]:
    """(layer, column) of the cells a selection event names (only the click markers count)."""
    chosen = []
    for point in points:
        if point.get("curve_number", CLICK_TRACE) != CLICK_TRACE or "x" not in point or "y" not in point:
            continue
        chosen.append((int(point["y"]), int(point["x"])))
    return chosen


def patched_prediction_bars(prediction: pd.DataFrame, title: str) -> go.Figure:
    """Probabilities of the top outputs in the clean, corrupted and patched runs, side by side."""
    labels = [str(o) for o in prediction["output"]]
    fig = go.Figure([go.Bar(name=run, x=labels, y=prediction[run], hovertemplate=f"%{{x}}: %{{y:.3f}}<extra>{run}</extra>")
                     for run in ("clean", "corrupted", "patched")])
    fig.update_layout(title=title, barmode="group", height=340, yaxis_title="probability", yaxis_range=[0, 1],
                      margin=dict(l=10, r=10, t=40, b=10))
    return fig


def next_token_bars(top: pd.DataFrame, chosen: str, title: str, sampled: bool = True) -> go.Figure:
    """The model's next-token probabilities and, when sampling, the sampler's (after temperature and top-k);
    the chosen token's bar outlined."""
    labels = [f"{t}" for t in top["token"]]
    outline = dict(line=dict(width=[3 if t == chosen else 0 for t in top["token"]], color="black"))
    bars = [go.Bar(name="model (temperature 1)", x=labels, y=top["probability"],
                   marker=outline if not sampled else None, hovertemplate="%{x}: %{y:.3f}<extra>model</extra>")]
    if sampled:
        bars.append(go.Bar(name="sampled from (temperature, top-k)", x=labels, y=top["sampling_probability"],
                           marker=outline, hovertemplate="%{x}: %{y:.3f}<extra>sampler</extra>"))
    fig = go.Figure(bars)
    fig.update_layout(title=title + ("" if sampled else " (greedy: the most likely is chosen)"), barmode="group",
                      height=340, yaxis_title="probability", yaxis_range=[0, 1], showlegend=sampled,
                      margin=dict(l=10, r=10, t=40, b=10), legend=dict(orientation="h", y=-0.2))
    return fig


def lens_line(chosen_probs: Sequence[float], top_probs: Sequence[float], top_tokens: Sequence[str], chosen: str,
              decided_at: int | None) -> go.Figure:
    """Per layer: the probability of the token finally chosen, and each layer's own top guess (labelled)."""
    layers = list(range(len(chosen_probs)))
    fig = go.Figure([
        go.Scatter(x=layers, y=list(chosen_probs), mode="lines+markers", name=f"p({chosen})",
                   hovertemplate="layer %{x}: %{y:.3f}<extra>chosen token</extra>"),
        go.Scatter(x=layers, y=list(top_probs), mode="markers+text", name="each layer's top token",
                   text=list(top_tokens), textposition="top center", textfont=dict(size=9),
                   hovertemplate="layer %{x}: %{text} %{y:.3f}<extra>top token</extra>"),
    ])
    if decided_at is not None:
        fig.add_vline(x=decided_at, line_dash="dot", annotation_text=f"decided at layer {decided_at}")
    fig.update_layout(title="Logit lens at the new position", xaxis_title="layer (0 = embeddings)",
                      xaxis=dict(tickmode="linear", dtick=max(1, len(layers) // 16)),
                      yaxis_title="probability", yaxis_range=[0, 1.1], height=360, margin=dict(l=10, r=10, t=40, b=10),
                      legend=dict(orientation="h", y=-0.25))
    return fig


__all__ = ["patching_heatmap", "selected_cells", "patched_prediction_bars", "next_token_bars", "lens_line",
           "CLICK_TRACE"]
