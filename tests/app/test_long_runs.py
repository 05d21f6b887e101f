"""Long runs show what runs, how far it got, and a Cancel that leaves the page usable (issue 18, bug 2).

AppTest runs a script to its end, but a click while it runs can be reproduced exactly: a browser's click asks
the session for a rerun with that button's trigger set (``ScriptRequests.request_rerun``), and Streamlit stops
the running script at its next Streamlit call (a progress update) and runs the button's callback before the
new run. ``click_while_running`` does that from inside the computation. A computation that ends the run with
``st.stop()`` leaves the page as it was at that moment: the status, the progress bar and the Cancel button.
"""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import streamlit as st
import torch

import models
from app import model_cache
from tests.app.page_helpers import chart_traces, open_page
from tests.app.test_heads_page import sentiment_classifier  # noqa: F401 - fixture
from tests.app.test_vision_audio_page import tiny_media, tiny_media_folders  # noqa: F401 - fixtures

TEXT = "the cat sat on the mat ."


def click_while_running(button_key: str) -> None:
    """What a click on ``button_key`` does while the script runs (see the module docstring)."""
    from streamlit.proto.WidgetStates_pb2 import WidgetStates
    from streamlit.runtime.scriptrunner_utils.script_requests import RerunData
    from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

    ctx = get_script_run_ctx()
    states = WidgetStates()
    click = states.widgets.add()
    click.id, click.trigger_value = ctx.session_state._state.get_widget_id_from_key(button_key), True
    # the browser asks for the page it shows, with that one trigger set (other widgets keep their values)
    assert ctx.script_requests.request_rerun(RerunData(widget_states=states, page_script_hash=ctx.page_script_hash))


def cancelled_once(real, cancel_key: str):
    """``real``, except that its first call reports some progress and is then cancelled by a click."""
    calls = []

    def first_cancelled(*args, **kwargs):
        calls.append(1)
        if len(calls) > 1:
            return real(*args, **kwargs)
        progress = kwargs.get("progress")
        progress(0.3, "a third done")
        click_while_running(cancel_key)
        progress(0.4, "never drawn")  # the next Streamlit call: the run stops here
        raise AssertionError("the click did not stop the run")
    return first_cancelled


def stopped_midway(fraction: float, message: str):
    """A computation that reports ``fraction`` done and then ends the run, leaving the page as it was then."""
    def midway(*args, **kwargs):
        kwargs["progress"](fraction, message)
        st.stop()
    return midway


def running_status(at):
    statuses = [s for s in at.status if s.state == "running"]
    assert len(statuses) == 1, [(s.label, s.state) for s in at.status]
    return statuses[0]


def cancel_buttons(at) -> list[str]:
    return [b.key for b in at.button if b.label == "Cancel"]


def test_scoring_heads_shows_a_status_progress_and_cancel(tiny_models, monkeypatch):
    from analysis import head_importance

    monkeypatch.setattr(head_importance, "compute_head_importance", stopped_midway(0.4, "gradient score: batch 2 of 5"))
    at = open_page("heads.py", query={"model": "smollm2"})
    status = running_status(at)
    assert status.label.startswith("Running: scoring 8 heads by gradient score on ") and status.label.endswith(" sentences…")
    bar = at.get("progress")[0]
    assert bar.value == 40 and bar.proto.text.startswith("gradient score: batch 2 of 5 · ")
    assert cancel_buttons(at) == ["heads_importance_cancel"]


def test_cancel_stops_scoring_and_the_page_stays_usable(tiny_models, monkeypatch):
    from analysis import head_importance

    monkeypatch.setattr(head_importance, "compute_head_importance",
                        cancelled_once(head_importance.compute_head_importance, "heads_importance_cancel"))
    at = open_page("heads.py", query={"model": "smollm2"})
    assert not at.exception and not at.error
    said = [w.value for w in at.warning]
    assert len(said) == 1 and said[0].startswith("Cancelled: scoring 8 heads by gradient score on ")
    assert said[0].endswith(" sentences. Nothing was changed; start it again when you are ready.")
    assert not [c for c in at.get("plotly_chart") if "heads_heatmap" in c.proto.id] and not cancel_buttons(at)
    at.multiselect(key="heads_mask").select("L0.H1").run()  # the rest of the page works without the scores
    assert not at.exception and chart_traces(at, "heads_change_grid")
    assert [w.value for w in at.warning][0].startswith("Cancelled")  # no scoring restarted by itself
    at.button(key="heads_run").click().run()
    assert not at.exception and not at.warning
    assert chart_traces(at, "heads_heatmap") and at.status[0].label.startswith("Done: scoring 8 heads")
    shared = model_cache.shared_model("smollm2")
    assert shared.config.pruned_heads == {} and not model_cache.session_models()


def test_cancel_a_pruning_curve_midway(tiny_models, sentiment_classifier, monkeypatch):  # noqa: F811
    from analysis import pruning_curve

    monkeypatch.setattr(pruning_curve, "compute_pruning_curve",
                        cancelled_once(pruning_curve.compute_pruning_curve, "heads_curve_cancel"))
    at = open_page("heads.py", query={"model": str(sentiment_classifier)})
    at.slider(key="heads_examples").set_value(8).run()
    at.slider(key="heads_curve_step").set_value(25).run()
    at.button(key="heads_curve_run").click().run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("Cancelled: pruning curve: 25% of the heads per step") for w in at.warning)
    assert not [c for c in at.get("plotly_chart") if "heads_curve_chart" in c.proto.id]
    assert at.selectbox(key="model_choice").value == "Local folder…" and not model_cache.session_models()
    before = models.load_model(str(sentiment_classifier)).run(TEXT).logits
    after = model_cache.shared_model(str(sentiment_classifier)).run(TEXT).logits
    torch.testing.assert_close(after, before)  # the model is unchanged
    at.button(key="heads_curve_run").click().run()  # and the page goes on: the curve, this time to the end
    assert not at.exception and chart_traces(at, "heads_curve_chart")


def test_cancel_pruning_keeps_no_copy(tiny_models, monkeypatch):
    from analysis import pruning_report

    monkeypatch.setattr(pruning_report, "compare_pruned",
                        cancelled_once(pruning_report.compare_pruned, "heads_prune_cancel"))
    at = open_page("heads.py", query={"model": "smollm2"})
    at.multiselect(key="heads_mask").select("L1.H0").run()
    at.button(key="heads_prune").click().run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("Cancelled: pruning 1 head of smollm2") for w in at.warning)
    assert at.selectbox(key="model_choice").value == "smollm2" and not model_cache.session_models()
    assert at.multiselect(key="heads_mask").value == ["L1.H0"]  # the mask is still there, to prune again
    at.button(key="heads_prune").click().run()
    assert at.selectbox(key="model_choice").value == "smollm2 − 1 head"


def test_loading_a_model_shows_what_loads(tiny_models, monkeypatch):
    monkeypatch.setattr(model_cache, "_LOADED", set())
    real_load = models.load_model

    def slow_first_load(name, task=None):
        if str(name) == "smollm2":
            st.stop()  # the page as it is while the load runs
        return real_load(name, task=task)

    monkeypatch.setattr(models, "load_model", slow_first_load)
    at = open_page("hidden_states.py", query={"model": "smollm2"})
    assert running_status(at).label.startswith("Running: loading smollm2 (once per server")
    assert not cancel_buttons(at)  # a load makes no progress calls: it cannot be stopped half-way


def test_images_and_audio_draw_the_load_where_the_last_results_were(tiny_media, monkeypatch):  # noqa: F811
    """The stale ViT result stood under a 13 s Whisper load. The load's status now takes the results' place, and
    the browser replaces a block by one of another type at once, children and all."""
    at = open_page("vision_audio.py")
    main = at.main.children
    results_at = next(i for i, block in main.items()
                      if any(getattr(e, "proto", None) is not None and "va_patch_overlay" in getattr(e.proto, "id", "")
                             for e in block))
    monkeypatch.setattr(model_cache, "_LOADED", set())
    real_load = models.load_model

    def slow_load(name, task=None):
        if str(name) == "whisper-tiny.en":
            st.stop()
        return real_load(name, task=task)

    monkeypatch.setattr(models, "load_model", slow_load)
    at.selectbox(key="va_model").set_value("whisper-tiny.en").run()
    there = at.main.children[results_at]
    status = [e for e in there if type(e).__name__ == "Status"]
    assert status and status[0].label.startswith("Running: loading whisper-tiny.en")
    assert not [e for e in there if "va_" in (getattr(getattr(e, "proto", None), "id", "") or "")]  # no ViT result


def test_explaining_shows_a_status_and_cancel(tiny_models, monkeypatch):
    import analysis.attribution as attribution

    monkeypatch.setattr(attribution, "attribute_text", stopped_midway(0.5, "integrated gradients: step 16 of 32"))
    at = open_page("attribution.py", query={"model": "minilm-sentiment"})
    at.text_area(key="attribution_free").set_value(TEXT).run()
    at.button(key="attribution_run").click().run()
    assert running_status(at).label.startswith("Running: explaining the text with ")
    assert at.get("progress")[0].value == 50 and cancel_buttons(at) == ["attribution_cancel"]


def test_cancel_training_keeps_the_untrained_head(tiny_models, monkeypatch):
    import models.training as training

    def cancelled_training(model, fit, validation, config, callback):
        callback(SimpleNamespace(epoch=1, step=1, total_steps=10, loss=0.69, epoch_result=None))
        click_while_running("heads_training_cancel")
        callback(SimpleNamespace(epoch=1, step=2, total_steps=10, loss=0.68, epoch_result=None))
        raise AssertionError("the click did not stop the run")

    monkeypatch.setattr(training, "train", cancelled_training)
    at = open_page("task_heads.py")
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.button(key="heads_train").click().run()
    assert not at.exception and not at.error
    assert any(w.value.startswith("Cancelled: training the sequence-classification head") for w in at.warning)
    assert next(m.value for m in at.metric if m.label == "Status") == "untrained" and "heads_result" not in at.session_state


def _top_index(at, predicate) -> int:
    """The index, among the page's top-level elements, of the first one (or its children) matching."""
    for index, element in at.main.children.items():
        if predicate(element) or any(predicate(e) for e in getattr(element, "children", {}).values()):
            return index
    raise AssertionError("not on the page")


@pytest.mark.parametrize("page", ["heads.py", "hidden_states.py"])
def test_a_status_in_one_run_does_not_move_the_page(tiny_models, monkeypatch, page):
    """A status drawn in the run that loads or computes, and not in the next, must not shift what follows: the
    browser takes a moved tab group for a new one and shows its first tab again."""
    at = open_page(page, query={"model": "smollm2"})
    box = "heads_free" if page == "heads.py" else "hidden_free"
    monkeypatch.setattr(model_cache, "_LOADED", set())
    model_cache.shared_model.clear()
    at.text_area(key=box).set_value("the dog sat .").run()  # loads again (and, on Heads, scores again)
    assert not at.exception  # this run loaded (its status gone once done) and, on Heads, scored
    is_tabs = lambda e: getattr(e, "type", "") == "tab_container"  # noqa: E731
    first = _top_index(at, is_tabs)
    at.text_area(key=box).set_value(TEXT).run()  # a run with nothing to load or score
    assert not at.status and _top_index(at, is_tabs) == first
