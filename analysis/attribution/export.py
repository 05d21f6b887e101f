"""Export an attribution report: a CSV table of scores, and a self-contained HTML page (no scripts, no network)."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .compare import method_summary, rank_correlation
from .methods import METHODS
from .render import image_overlay, png_data_uri, token_html, waveform_strip
from .result import AttributionReport


def report_frame(report: AttributionReport) -> pd.DataFrame:
    """One row per unit (token, pixel, frame), one column of scores per method (by method key)."""
    scores = {key: r.scores.detach().double().flatten().numpy() for key, r in report.results.items()}
    first = next(iter(report.results.values())).scores if report.results else None
    if report.modality == "text":
        frame = pd.DataFrame({"position": range(len(report.units)), "token": report.units,
                              "special": report.special or [False] * len(report.units)})
    elif first is not None and first.dim() == 2:
        h, w = first.shape
        rows, cols = np.divmod(np.arange(h * w), w)
        frame = pd.DataFrame({"row": rows, "column": cols})
    else:
        n = first.numel() if first is not None else 0
        frame = pd.DataFrame({"frame": range(n)})
        if report.unit_seconds:
            frame["seconds"] = np.arange(n) * report.unit_seconds
    for key, values in scores.items():
        frame[key] = values
    return frame


def report_csv(report: AttributionReport) -> str:
    return report_frame(report).to_csv(index=False)


def report_html(report: AttributionReport) -> str:
    """A page a person can open offline: input, target, each method's view, completeness and agreement."""
    t = report.target
    title = f"Attribution: {report.model_name or 'model'}"
    parts = [f"<h1>{html.escape(title)}</h1>",
             f"<p><b>Input:</b> {html.escape(report.input_text or report.modality)}</p>",
             f"<p><b>Target:</b> {html.escape(t.label)} (index {t.index}, {'chosen' if t.chosen else 'predicted'}; "
             f"logit {t.score:.4g}, probability {t.probability:.3f})</p>",
             '<p style="color:#555">Signed methods: <span style="color:#1a9641">green</span> pushed the target up, '
             '<span style="color:#d01c8b">magenta</span> pushed it down. Magnitude-only methods are blue.</p>']
    for key, result in report.results.items():
        spec = METHODS[key]
        scores = result.scores.detach().double().numpy()
        parts.append(f"<h2>{html.escape(spec.label)} <small style='color:#777'>({html.escape(spec.reference)})</small></h2>")
        if report.modality == "text":
            parts.append(token_html(report.units, scores, result.signed, report.special))
        elif scores.ndim == 2:
            picture = image_overlay(scores, result.signed, report.extras.get("image"))
            parts.append(f'<img alt="{html.escape(spec.label)} heatmap" src="{png_data_uri(picture)}" '
                         'style="image-rendering: pixelated; width: 256px">')  # small images scale up sharply
        else:
            picture = waveform_strip(np.asarray(report.extras.get("waveform", np.zeros(0))), scores, result.signed)
            parts.append(f'<img alt="{html.escape(spec.label)} over time" src="{png_data_uri(picture)}">')
        if result.convergence_delta is not None:
            parts.append(f"<p>Convergence delta {result.convergence_delta:+.3g} with {result.n_steps} steps; "
                         f"F(x) - F(baseline) = {result.output_difference:+.4g} "
                         f"({'within' if result.converged else 'above'} 5%).</p>")
    parts += ["<h2>Methods</h2>", method_summary(report).fillna("").to_html(index=False, float_format=lambda v: f"{v:.4g}"),
              "<h2>Agreement (Spearman rank correlation of |scores|)</h2>",
              rank_correlation(report).to_html(na_rep="n/a", float_format="%.3f")]
    style = ("body{font-family:sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 6px;font-size:13px}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{style}</style></head><body>{''.join(parts)}</body></html>")
