"""Rank correlation between methods and the CSV / HTML exports, on reports built by hand."""
from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.attribution import (Attribution, AttributionReport, Target, method_summary, rank_correlation,
                                  report_csv, report_frame, report_html)
from analysis.attribution.render import colours, normalise, token_html

TARGET = Target(index=1, label="positive", position=None, chosen=False, score=2.0, probability=0.9)


def text_report() -> AttributionReport:
    tokens = ["[CLS]", "i", "love", "it", "[SEP]"]
    return AttributionReport(
        modality="text", units=tokens, target=TARGET, model_name="tiny", input_text="i love it",
        special=[True, False, False, False, True],
        results={
            "integrated_gradients": Attribution("integrated_gradients", torch.tensor([0.0, 0.1, 0.9, -0.2, 0.0]),
                                                convergence_delta=0.01, output_difference=0.8, n_steps=50, converged=True),
            "occlusion": Attribution("occlusion", torch.tensor([0.0, 0.2, 0.7, -0.3, 0.0])),
            # rollout ranks the middle words the other way round, and puts most weight on [CLS]
            "attention_rollout": Attribution("attention_rollout", torch.tensor([5.0, 0.3, 0.1, 0.2, 1.0]), signed=False),
        })


def test_rank_correlation_compares_magnitudes_on_content_tokens():
    corr = rank_correlation(text_report())
    assert list(corr.columns) == ["Integrated gradients", "Occlusion", "Attention rollout"]
    assert corr.loc["Integrated gradients", "Occlusion"] == pytest.approx(1.0)  # |0.1|<|-0.2|<|0.9| both
    assert corr.loc["Integrated gradients", "Attention rollout"] == pytest.approx(-1.0)
    signed = rank_correlation(text_report(), magnitude=False)
    assert signed.loc["Integrated gradients", "Occlusion"] == pytest.approx(1.0)
    assert signed.loc["Integrated gradients", "Attention rollout"] == pytest.approx(-0.5)


def test_csv_round_trips_every_score():
    report = text_report()
    frame = pd.read_csv(io.StringIO(report_csv(report)))
    assert list(frame.columns) == ["position", "token", "special", "integrated_gradients", "occlusion", "attention_rollout"]
    assert frame["token"].tolist() == report.units
    np.testing.assert_allclose(frame["integrated_gradients"], report.results["integrated_gradients"].scores.numpy(), atol=1e-7)


def test_html_is_self_contained_and_shows_every_method():
    page = report_html(text_report())
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page and "http" not in page
    for label in ("Integrated gradients", "Occlusion", "Attention rollout", "Spearman", "positive"):
        assert label in page
    assert "Convergence delta +0.01 with 50 steps" in page
    assert page.count(">love</span>") == 3


def test_token_colours_follow_the_sign_and_special_tokens_are_left_out_of_the_scale():
    html = token_html(["[CLS]", "good", "bad"], np.array([100.0, 1.0, -0.5]), signed=True, special=[True, False, False])
    assert "rgb(26,150,65)" in html  # "good" at full green: [CLS]'s 100 does not set the scale
    pale = colours(normalise(np.array([-0.5]) / 1.0, signed=True), signed=True)[0]
    assert pale[0] > pale[1]  # negative scores lean magenta
    unsigned = colours(np.array([1.0]), signed=False)[0]
    assert tuple(unsigned) == (33, 102, 172)


def test_image_and_audio_reports_export_with_pictures():
    image = AttributionReport(modality="image", units=["4", "4"], target=TARGET, model_name="vit",
                              results={"saliency": Attribution("saliency", torch.rand(4, 4), signed=False)},
                              extras={"image": np.zeros((16, 16, 3), dtype=np.uint8)})
    frame = report_frame(image)
    assert list(frame.columns) == ["row", "column", "saliency"] and len(frame) == 16
    assert "data:image/png;base64," in report_html(image)
    audio = AttributionReport(modality="audio", units=["10"], target=TARGET, unit_seconds=0.02,
                              results={"occlusion": Attribution("occlusion", torch.linspace(-1, 1, 10))},
                              extras={"waveform": np.sin(np.linspace(0, 20, 3200))})
    frame = report_frame(audio)
    assert frame["seconds"].iloc[-1] == pytest.approx(0.18)
    assert "data:image/png;base64," in report_html(audio)


def test_method_summary_reports_completeness():
    summary = method_summary(text_report()).set_index("method")
    assert summary.loc["Integrated gradients", "delta / |F(x) - F(baseline)|"] == pytest.approx(0.0125)
    assert bool(summary.loc["Integrated gradients", "complete within 5%"])
    assert summary.loc["Attention rollout", "reference"] == "Abnar & Zuidema 2020"
