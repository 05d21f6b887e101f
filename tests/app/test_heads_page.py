"""The Heads page, driven by widget keys on tiny models; every number is checked against the analysis run outside.

`minilm` is a tiny BERT without a head (entropy only), `smollm2` a tiny Llama (LM loss, GQA),
and a tiny BERT classifier with the sentiment labels stands in for a fine-tuned model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import models
from analysis.head_effect import masking_effect
from analysis.head_importance import (compute_ablation_importance, compute_attention_entropy,
                                      compute_gradient_importance)
from analysis.metrics import make_eval_set, read_labelled_csv
from analysis.pruning_curve import compute_pruning_curve
from app.head_plots import CLICK_TRACE, MASKED_TRACE, importance_heatmap, selected_heads
from app.sidebar import example_sentences
from tests.app.page_helpers import captions, chart_traces, chart_z, decode, open_page
from tests.tiny_models import make_checkpoint

SENTIMENT = Path(__file__).resolve().parents[2] / "sample_data" / "sentiment.csv"
TEXT = "the cat sat on the mat ."


def heads_page(query: dict[str, str] | None = None):
    at = open_page("heads.py", query=query)
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["Heads"]
    return at


def test_model_without_a_head_offers_entropy_only(tiny_models):
    at = heads_page()
    assert at.selectbox(key="heads_method").options == ["Attention entropy"]
    assert any("only attention entropy can be scored" in c for c in captions(at))
    n = at.slider(key="heads_examples").value
    expected = compute_attention_entropy(models.load_model("minilm"), example_sentences()[:n]).scores.numpy()
    np.testing.assert_allclose(chart_z(at, "heads_heatmap"), expected, atol=1e-6)
    assert at.tabs[2].info[0].value.startswith("A pruning curve measures a loss")


def test_gradient_scores_of_a_causal_lm(tiny_models):
    at = heads_page({"model": "smollm2"})
    assert at.selectbox(key="heads_method").value == "gradient"
    at.slider(key="heads_examples").set_value(8).run()
    assert not at.exception and not at.error
    model = models.load_model("smollm2")
    expected = compute_gradient_importance(model, make_eval_set(model, example_sentences()[:8]))
    np.testing.assert_allclose(chart_z(at, "heads_heatmap"), expected.scores.numpy(), atol=1e-6)
    top = expected.to_frame().iloc[0]
    assert any(f"Highest importance: L{int(top['layer'])}.H{int(top['head'])} (" in c for c in captions(at))
    at.checkbox(key="heads_normalize").uncheck().run()
    np.testing.assert_allclose(chart_z(at, "heads_heatmap"), expected.details["raw"].numpy(), atol=1e-6)
    table = at.tabs[3].dataframe[0].value
    assert list(table["rank"]) == list(range(1, 9))


def test_masking_shows_the_effect_on_prediction_and_attention(tiny_models):
    at = heads_page({"model": "smollm2"})
    at.text_area(key="heads_free").set_value(TEXT).run()
    assert at.tabs[0].info  # nothing masked yet
    at.multiselect(key="heads_mask").select("L0.H1").select("L0.H2").run()
    assert not at.exception and not at.error
    effect = masking_effect(models.load_model("smollm2"), TEXT, {0: [1, 2]})
    bars = chart_traces(at, "heads_prediction")
    np.testing.assert_allclose(decode(bars[0]["y"]).astype(float), effect.prediction["before"], atol=1e-6)
    np.testing.assert_allclose(decode(bars[1]["y"]).astype(float), effect.prediction["after"], atol=1e-6)
    change = chart_z(at, "heads_change_grid")
    np.testing.assert_allclose(change, effect.attention_change.numpy(), atol=1e-6)
    assert change[0, 0] == 0 and change[0, 3] == 0 and change[0, 1] > 0  # only the masked heads of layer 0 moved
    assert (change[1] > 0).any()                                          # later layers did
    masked_marks = chart_traces(at, "heads_heatmap")[2]
    assert sorted(zip(masked_marks["y"], masked_marks["x"])) == [(0, 1), (0, 2)]
    at.slider(key="heads_effect_layer").set_value(1).run()
    at.selectbox(key="heads_effect_head").set_value(3).run()
    from analysis.attention import head_pattern
    np.testing.assert_allclose(chart_z(at, "heads_attn_after"), head_pattern(effect.after, 1, 3).numpy(), atol=1e-6)
    np.testing.assert_allclose(chart_z(at, "heads_attn_before"), head_pattern(effect.before, 1, 3).numpy(), atol=1e-6)
    at.button(key="heads_mask_clear").click().run()
    assert at.multiselect(key="heads_mask").value == []


def test_mask_the_least_important_button(tiny_models):
    at = heads_page({"model": "smollm2"})
    at.slider(key="heads_examples").set_value(8).run()
    at.number_input(key="heads_least_k").set_value(3).run()
    at.button(key="heads_mask_least").click().run()
    model = models.load_model("smollm2")
    least = compute_gradient_importance(model, make_eval_set(model, example_sentences()[:8])).least_important(3)
    expected = [f"L{layer}.H{head}" for layer, heads in least.items() for head in heads]
    assert sorted(at.multiselect(key="heads_mask").value) == sorted(expected)


def test_ablation_runs_on_request_with_its_numbers(tiny_models):
    at = heads_page({"model": "smollm2"})
    at.slider(key="heads_examples").set_value(6).run()
    at.selectbox(key="heads_method").set_value("ablation").run()
    assert not [c for c in at.get("plotly_chart") if "heads_heatmap" in (c.proto.id or "")]  # not before the click
    assert at.tabs[3].info[0].value.startswith("No scores yet")
    at.button(key="heads_run").click().run()
    assert not at.exception and not at.error
    model = models.load_model("smollm2")
    expected = compute_ablation_importance(model, make_eval_set(model, example_sentences()[:6]), metric="loss")
    np.testing.assert_allclose(chart_z(at, "heads_heatmap"), expected.scores.numpy(), atol=1e-5)
    assert any(f"baseline loss {expected.baseline:.4f}" in c for c in captions(at))
    at.radio(key="heads_metric").set_value("loss").run()  # same settings: kept, not recomputed or lost
    np.testing.assert_allclose(chart_z(at, "heads_heatmap"), expected.scores.numpy(), atol=1e-5)


def test_prune_makes_a_session_copy_and_reports_what_it_removed(tiny_models):
    from app.model_cache import shared_model

    at = heads_page({"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L1.H0").select("L1.H1").run()
    at.button(key="heads_prune").click().run()
    assert not at.exception and not at.error
    assert at.selectbox(key="model_choice").value == "smollm2 − 2 heads"
    assert at.multiselect(key="heads_mask").value == []
    model = models.load_model("smollm2")
    pruned = model.prune_heads({1: [0, 1]})
    removed = model.num_parameters() - pruned.num_parameters()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters removed"] == f"{removed:,}"
    assert metrics["Heads"] == "6 of 8"
    assert metrics["Speed-up"].endswith("×") and float(metrics["Speed-up"][:-1]) > 0
    # the page now shows the pruned copy: its pruned heads are blank in the heatmap, no longer maskable
    z = chart_z(at, "heads_heatmap")
    assert np.isnan(z[1, :2]).all() and not np.isnan(z[0]).any()
    assert "L1.H0" not in at.multiselect(key="heads_mask").options
    assert "prune_heads({1: [0, 1]})" in at.code[0].value
    shared = shared_model("smollm2")
    assert shared.config.pruned_heads == {} and shared.head_ids()[1] == [0, 1, 2, 3]
    other = open_page("heads.py")  # another session never sees this copy
    assert "smollm2 − 2 heads" not in other.selectbox(key="model_choice").options


@pytest.fixture
def sentiment_classifier(tmp_path):
    make_checkpoint("bert-cls", tmp_path, initializer_range=0.3, id2label={0: "negative", 1: "positive"},
                    label2id={"negative": 0, "positive": 1})
    return tmp_path


def test_pruning_curve_on_the_labelled_set(tiny_models, sentiment_classifier):
    at = heads_page({"model": str(sentiment_classifier)})
    assert not at.error, [e.value for e in at.error]
    at.slider(key="heads_examples").set_value(16).run()
    assert at.radio(key="heads_curve_metric").value == "accuracy"
    at.slider(key="heads_curve_step").set_value(25).run()
    at.button(key="heads_curve_run").click().run()
    assert not at.exception and not at.error
    model = models.load_model(str(sentiment_classifier))
    train_texts, train_labels = read_labelled_csv(SENTIMENT, split="train")
    test_texts, test_labels = read_labelled_csv(SENTIMENT, split="test")
    curve = compute_pruning_curve(model, make_eval_set(model, test_texts, test_labels),
                                  score_data=make_eval_set(model, train_texts[:16], train_labels[:16]),
                                  metric="accuracy", step_fraction=0.25, max_fraction=0.9)
    line = chart_traces(at, "heads_curve_chart")[0]
    np.testing.assert_allclose(decode(line["y"]).astype(float), curve.table["accuracy"], atol=1e-6)
    np.testing.assert_allclose(decode(line["x"]).astype(float), curve.table["fraction_pruned"] * 100)
    shown = at.tabs[2].dataframe[0].value
    assert list(shown["heads_pruned"]) == [0, 2, 4, 6]
    # heads as "L0.H1" everywhere (issue 18, bug 12: "0.10" and "0.1" read as the same number)
    removed_each_step = [sorted(f"L{l}.H{h}" for l, hs in now.items() for h in hs if h not in before.get(l, []))
                         for before, now in zip((({}),) + curve.pruned[:-1], curve.pruned)]
    assert [sorted(filter(None, cell.split(", "))) for cell in shown["pruned_now"]] == removed_each_step
    assert any(f"{len(test_texts)} test sentences" in c for c in captions(at))


def test_code_to_reproduce_gives_the_numbers_on_the_page(tiny_models, monkeypatch):
    at = heads_page({"model": "smollm2"})
    at.slider(key="heads_examples").set_value(8).run()
    at.text_area(key="heads_free").set_value(TEXT).run()
    at.multiselect(key="heads_mask").select("L0.H3").run()
    code = at.code[0].value
    monkeypatch.chdir(Path(__file__).resolve().parents[2])  # the code reads sample_data/ from the repository root
    scope: dict = {}
    exec(code, scope)  # noqa: S102 - our own generated code, on tiny models
    np.testing.assert_allclose(scope["importance"].table().to_numpy(), chart_z(at, "heads_heatmap"), atol=1e-6)
    bars = chart_traces(at, "heads_prediction")
    np.testing.assert_allclose(scope["effect"].prediction["after"], decode(bars[1]["y"]).astype(float), atol=1e-6)
    assert scope["pruned"].config.pruned_heads == {(scope["pruned"].config.main_stack, 0): [3]}


def test_bad_input_is_shown_and_the_page_stays_up(tiny_models):
    at = heads_page({"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L0.H0").run()
    at.text_area(key="heads_free").set_value("   ").run()
    assert not at.exception
    assert any("Empty text" in e.value for e in at.error)


def test_heatmap_cells_are_clickable_and_clicks_name_the_head():
    scores = np.arange(12, dtype=float).reshape(3, 4)
    scores[2, 1] = np.nan  # a pruned head: blank, not clickable
    fig = importance_heatmap(scores, "t", "importance", masked=[(0, 3)])
    click_trace = fig.data[CLICK_TRACE]
    cells = {(int(c[0]), int(c[1])) for c in click_trace.customdata}
    assert len(cells) == 11 and (2, 1) not in cells
    assert all(int(x) == int(head) and int(y) == int(layer) and score == scores[int(layer), int(head)]
               for x, y, (layer, head, score) in zip(click_trace.x, click_trace.y, click_trace.customdata))
    assert list(fig.data[MASKED_TRACE].x) == [3] and list(fig.data[MASKED_TRACE].y) == [0]  # crossed out
    event_points = [{"curve_number": CLICK_TRACE, "x": 2, "y": 1, "customdata": {"0": 1, "1": 2, "2": 6.0}},
                    {"curve_number": 0, "x": 0, "y": 0},   # the heatmap layer itself names nothing
                    {"curve_number": MASKED_TRACE, "x": 3, "y": 0}]  # a cross names its (masked) head
    assert selected_heads(event_points) == [(1, 2), (0, 3)]


def test_masks_stay_in_step_when_the_sidebar_switches_models(tiny_models, tiny_model_folders):
    """Issue 18, bug 3: masks set, sidebar to "Local folder…" (the page waits for a path), a folder typed.

    The box, the crosses, Prune and the effect must all show the same heads, in the browser too: a
    box drawn again from scratch shows what the server sends, so the page must send it.
    """
    from app.sidebar import LOCAL
    from tests.app.page_helpers import browser_shows

    def shown(at) -> dict:
        box = at.multiselect(key="heads_mask")
        traces = chart_traces(at, "heads_heatmap")
        crosses = sorted(zip(traces[2]["y"], traces[2]["x"])) if len(traces) > 2 else []
        prune = next(b for b in at.button if b.key == "heads_prune")
        return {"box": sorted(box.value), "browser": sorted(browser_shows(box)), "crosses": crosses,
                "prune": (prune.label, prune.disabled), "effect": bool(at.tabs[0].info)}

    at = heads_page({"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L0.H1").select("L0.H2").select("L1.H0").run()
    at.selectbox(key="model_choice").set_value(LOCAL).run()
    assert [i.value for i in at.info] == ["Type a folder or hub id in the sidebar."]
    at.text_input(key="model_folder").set_value(str(tiny_model_folders["llama"])).run()
    assert not at.exception and not at.error
    assert shown(at) == {"box": [], "browser": [], "crosses": [], "prune": ("Prune the 0 masked heads", True),
                         "effect": True}  # another model: its own (empty) mask everywhere
    at.selectbox(key="model_choice").set_value("smollm2").run()
    three = ["L0.H1", "L0.H2", "L1.H0"]
    assert shown(at) == {"box": three, "browser": three, "crosses": [(0, 1), (0, 2), (1, 0)],
                         "prune": ("Prune the 3 masked heads", False), "effect": False}  # and back: its mask


class _ScriptedClock:
    """A stand-in for `time` in analysis.pruning_report: every timed forward pass takes the next scripted duration."""

    def __init__(self, durations: list[float]):
        self.durations, self.now, self.calls = durations, 0.0, 0

    def perf_counter(self) -> float:
        if self.calls % 2:  # the end of a run: advance by its duration
            self.now += self.durations[(self.calls // 2) % len(self.durations)]
        self.calls += 1
        return self.now


def test_prune_speed_up_is_the_ratio_of_the_times_it_shows(tiny_models, monkeypatch):
    """Issue 18, bug 4: "Speed-up 1.11×" above "892.0 ms before, 892.3 ms after". With scripted, uneven times
    (a median of per-round ratios says 1.05× where the median times are equal), the metric and the caption
    must give the same numbers."""
    import re

    from analysis import pruning_report

    monkeypatch.setattr(pruning_report, "time", _ScriptedClock([0.100, 0.130, 0.090, 0.120, 0.095]))
    at = heads_page({"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L1.H0").run()
    at.button(key="heads_prune").click().run()
    assert not at.exception and not at.error
    speedup = next(m for m in at.metric if m.label == "Speed-up").value
    caption = next(c for c in captions(at) if " ms before" in c)
    before, after = (float(x) for x in re.search(r"([\d.]+) ms before[ ,/]+([\d.]+) ms after", caption).groups())
    assert speedup == f"{before / after:.2f}×" and f"Speed-up {speedup}" in caption
    assert re.search(r"\d+ runs of each model", caption) and "pair to pair it moved between" in caption


def _axis_ticks(axis) -> list[int]:
    """The tick labels plotly draws on a linear axis with dtick 1: the integers inside its range."""
    assert axis.range is not None, "autorange pads the axis past the cells"
    low, high = sorted(axis.range)
    return list(range(int(np.ceil(low)), int(np.floor(high)) + 1))


def test_heatmap_axes_label_only_the_layers_and_heads_there_are(tiny_models):
    """Issue 18, bug 8: a 30-layer model's heatmap was labelled layers -2, -1, 30 and 31."""
    fig = importance_heatmap(np.random.default_rng(0).random((30, 9)), "t", "importance", masked=[(0, 1)])
    assert _axis_ticks(fig.layout.yaxis) == list(range(30)) and _axis_ticks(fig.layout.xaxis) == list(range(9))
    assert fig.layout.yaxis.range[0] > fig.layout.yaxis.range[1]  # layer 0 on top
    at = heads_page({"model": "smollm2"})
    layout = next(json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart") if "heads_heatmap" in c.proto.id)
    assert layout["yaxis"]["range"] == [1.5, -0.5] and layout["xaxis"]["range"] == [-0.5, 3.5]  # 2 layers x 4 heads


def test_equal_scores_name_no_highest_or_lowest_head(tiny_models, sentiment_classifier, monkeypatch):
    """Issue 18, bug 11: leave-one-out with the accuracy metric gave all zeros, yet named a highest and a lowest head."""
    from analysis import head_importance
    from analysis.head_importance import HeadImportance

    def no_head_matters(model, data, method, progress=None, **params):
        scores = torch.zeros(model.n_layers, model.n_heads, dtype=torch.float64)  # no single head flips a sentence
        return HeadImportance(method=method, scores=scores, metric=params.get("metric", "loss"),
                              n_examples=len(data.texts), baseline=0.75)

    monkeypatch.setattr(head_importance, "compute_head_importance", no_head_matters)
    at = heads_page({"model": str(sentiment_classifier)})
    at.selectbox(key="heads_method").set_value("ablation").run()
    assert at.radio(key="heads_metric").value == "accuracy"
    at.button(key="heads_run").click().run()
    assert not at.exception and not at.error
    said = next(c for c in captions(at) if c.startswith("Click a cell"))
    assert "Highest" not in said and "lowest:" not in said
    assert "Every head scores 0.0000 (metric drop): no head is higher or lower than another" in said
    assert "accuracy moves in whole sentences" in said
    assert at.button(key="heads_mask_least").disabled


def test_prune_message_follows_the_sidebar(tiny_models):
    """Issue 18, bug 13: "now selected in the sidebar" stayed after another model was chosen."""
    at = heads_page({"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L1.H0").run()
    at.button(key="heads_prune").click().run()
    assert [s.value for s in at.success] == ["smollm2 − 1 head: a pruned copy of smollm2, now selected in the sidebar."]
    at.selectbox(key="model_choice").set_value("smollm2").run()  # back to the original
    assert [s.value for s in at.success] == ["smollm2 − 1 head: a pruned copy of smollm2, kept for this session: "
                                             "pick it in the sidebar to use it."]
    at.selectbox(key="model_choice").set_value("minilm").run()  # another model: the report is not about it
    assert not at.success and not [m for m in at.metric if m.label == "Speed-up"]
    assert not at.exception
