"""Plot builders for vocabulary and training results: they take numbers, never models."""
from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import plotly.graph_objects as go

ACCURACY_TICKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def loss_curve(step_losses: Sequence[float], epoch_rows: pd.DataFrame | None = None,
               steps_per_epoch: int | None = None) -> go.Figure:
    """Training loss per step, with validation loss and accuracy at each epoch's end when known."""
    steps = list(range(1, len(step_losses) + 1))
    fig = go.Figure(go.Scatter(x=steps, y=list(step_losses), mode="lines", name="train loss (step)"))
    if epoch_rows is not None and len(epoch_rows) and steps_per_epoch:
        ends = [min(len(step_losses), int(e) * steps_per_epoch) for e in epoch_rows["epoch"]]
        if epoch_rows["eval_loss"].notna().any():
            fig.add_trace(go.Scatter(x=ends, y=epoch_rows["eval_loss"], mode="lines+markers", name="validation loss"))
            fig.add_trace(go.Scatter(x=ends, y=epoch_rows["eval_accuracy"], mode="lines+markers",
                                     name="validation accuracy", yaxis="y2"))
    fig.update_layout(height=320, xaxis_title="step", yaxis_title="loss", margin=dict(l=10, r=10, t=30, b=10),
                      # ticks of its own: overlaid, plotly syncs them to the loss axis' grid (0.05, 0.2, 0.35...)
                      yaxis2=dict(title="accuracy", overlaying="y", side="right", range=[0, 1], tickmode="array",
                                  tickvals=ACCURACY_TICKS, ticktext=[f"{v:.0%}" for v in ACCURACY_TICKS],
                                  showgrid=False),
                      legend=dict(orientation="h", y=1.12))
    return fig


def before_after_bars(frame: pd.DataFrame, title: str = "") -> go.Figure:
    """Grouped bars of a before/after table (columns output, before, after)."""
    fig = go.Figure([go.Bar(name="before", x=frame["output"], y=frame["before"]),
                     go.Bar(name="after", x=frame["output"], y=frame["after"])])
    fig.update_layout(barmode="group", title=title, height=320, margin=dict(l=10, r=10, t=40, b=10))
    return fig
