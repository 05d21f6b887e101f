"""Compare and Interventions: every long run shows its progress and a Cancel that stops it at the next step, shows
nothing of it as a result, leaves the model unchanged, and lets the next run go through (issue 18).

The click is reproduced as in tests/app/test_long_runs.py: from inside the real computation, at one of its own
progress calls, so the work really is stopped midway and the steps after the click are counted.
"""
from __future__ import annotations

import numpy as np
import torch

import analysis.compare_report as compare_report
import analysis.generation as generation
import analysis.patching as patching
import analysis.steering as steering
import models
import models.pipelines as pipelines
from app import model_cache
from tests.app.page_helpers import chart_z, open_page
from tests.app.test_interventions_page import ANSWER, CLEAN, CORRUPTED, WRONG, chart_with_prefix, set_prompts
from tests.app.test_long_runs import cancel_buttons, click_while_running, running_status, stopped_midway
from tests.app.test_vision_audio_page import tiny_media, tiny_media_folders  # noqa: F401 - fixtures

TEXT = "the cat sat on the mat ."
SAID = "Nothing was changed; start it again when you are ready."


def cancelled_at(real, cancel_key: str, at_call: int, when=lambda kwargs: True):
    """``real`` whose first call that ``when`` accepts is cancelled by a click at its ``at_call``-th progress call;
    ``steps`` counts the progress calls that call made (none may follow the click)."""
    state = {"armed": True, "steps": 0}

    def wrapped(*args, **kwargs):
        outer = kwargs.get("progress")
        if not (state["armed"] and outer is not None and when(kwargs)):
            return real(*args, **kwargs)
        state["armed"] = False

        def progress(fraction, message=""):
            state["steps"] += 1
            if state["steps"] == at_call:
                click_while_running(cancel_key)
            outer(fraction, message)  # a Streamlit call: after the click the run stops here

        kwargs["progress"] = progress
        real(*args, **kwargs)
        raise AssertionError("the click did not stop the run")
    wrapped.state = state
    return wrapped


def logits_unchanged(name: str) -> None:
    """The shared model gives what a fresh load gives: no hook, mask or steering vector left on it."""
    before = models.load_model(name).run(TEXT).logits
    torch.testing.assert_close(model_cache.shared_model(name).run(TEXT).logits, before)
    assert not model_cache.session_models()


def charts(at, prefix: str) -> list[str]:
    return [c.proto.id for c in at.get("plotly_chart") if c.proto.id and prefix in c.proto.id]


# ---------------------------------------------------------------------------------------------------- Compare
def test_cancel_a_comparison_before_its_second_model(tiny_media, monkeypatch):  # noqa: F811
    called = []
    real_pipeline = pipelines.pipeline

    def counted(task, model):
        pipe = real_pipeline(task, model)

        def run(source, **kwargs):
            called.append(task)
            out = pipe(source, **kwargs)
            if len(called) == 1:
                click_while_running("cmp_cancel")  # a click while the first model answers
            return out
        run.model = pipe.model
        return run

    monkeypatch.setattr(pipelines, "pipeline", counted)
    at = open_page("compare.py")
    at.text_area(key="cmp_text").set_value("i love this film").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [f"Cancelled: comparing 2 models. {SAID}"]
    assert called and set(called) == {"text-classification"}  # stopped before the second model
    assert not at.dataframe and not at.subheader and "cmp_last" not in at.session_state  # nothing half-shown
    assert not cancel_buttons(at)
    for name in ("minilm-sentiment", "smollm2"):
        logits_unchanged(name)
    at.button(key="cmp_run").click().run()  # the next run goes through
    assert not at.exception and not at.warning
    assert list(at.dataframe[0].value["model"]) == ["text-classification · minilm-sentiment",
                                                    "text-generation · smollm2"]


def test_a_comparison_shows_which_model_runs(tiny_media, monkeypatch):  # noqa: F811
    monkeypatch.setattr(compare_report, "run_comparison", stopped_midway(0.5, "text-generation · smollm2…"))
    at = open_page("compare.py")
    at.button(key="cmp_run").click().run()
    assert running_status(at).label == "Running: comparing 2 models…"
    bar = at.get("progress")[0]
    assert bar.value == 50 and bar.proto.text.startswith("text-generation · smollm2… · ")
    assert cancel_buttons(at) == ["cmp_cancel"]


# ---------------------------------------------------------------------------------------------- Interventions
def interventions(at_model: str = "smollm2"):
    at = set_prompts(open_page("interventions.py", query={"model": at_model}))
    assert not at.exception and not at.error
    return at


def test_cancel_exact_patching_midway(tiny_models, monkeypatch):
    monkeypatch.setattr(patching, "_auto_batch", lambda model, n_tokens, n_runs: 1)  # one patched run per step
    cancelled = cancelled_at(patching.patching_experiment, "iv_exact_cancel", at_call=6,
                             when=lambda kwargs: kwargs.get("exact"))
    monkeypatch.setattr(patching, "patching_experiment", cancelled)
    at = interventions()
    assert charts(at, "iv_attribution_") and not charts(at, "iv_exact_")
    label = at.button(key="iv_run").label
    at.button(key="iv_run").click().run()
    assert not at.exception and not at.error
    n_runs = label.removeprefix("Run exact patching (").split(" ")[0]
    assert [w.value for w in at.warning] == [f"Cancelled: exact patching: {n_runs} patched runs. {SAID}"]
    assert cancelled.state["steps"] == 6 < int(n_runs.replace(",", ""))  # stopped midway, nothing after the click
    assert not charts(at, "iv_exact_") and len(charts(at, "iv_attribution_")) == 4  # the estimate stays
    assert not any("Correlation of exact" in c.value for c in at.caption) and not cancel_buttons(at)
    logits_unchanged("smollm2")
    at.button(key="iv_run").click().run()  # the next run goes to the end
    assert not at.exception and not at.warning
    model = models.load_model("smollm2")
    expected = patching.activation_patching(model, CLEAN, CORRUPTED, "head", ANSWER, WRONG).numpy()
    np.testing.assert_allclose(chart_z(at, chart_with_prefix(at, "iv_exact_head_")), expected, atol=1e-6)


def test_the_attribution_estimate_shows_its_progress(tiny_models, monkeypatch):
    at = open_page("interventions.py", query={"model": "smollm2"})
    monkeypatch.setattr(patching, "patching_experiment", stopped_midway(0.5, "attribution patching: clean forward"))
    at = set_prompts(at)
    assert at.get("progress")[0].proto.text.startswith("attribution patching: clean forward · ")
    assert running_status(at).label.startswith("Running: attribution patching: 4 sites × 2 layers")
    assert cancel_buttons(at) == ["iv_attribution_cancel"]  # the estimate runs by itself, and shows so


def test_cancel_the_attribution_estimate_and_start_it_again(tiny_models, monkeypatch):
    cancelled = cancelled_at(patching.patching_experiment, "iv_attribution_cancel", at_call=3,
                             when=lambda kwargs: not kwargs.get("exact"))
    at = open_page("interventions.py", query={"model": "smollm2"})
    monkeypatch.setattr(patching, "patching_experiment", cancelled)
    at = set_prompts(at)
    assert [w.value for w in at.warning][0].startswith("Cancelled: attribution patching: 4 sites × 2 layers")
    assert not charts(at, "iv_attribution_") and not [b for b in at.button if b.key == "iv_run"]
    at.text_input(key="iv_gen_prompt").set_value("the cat sat on").run()  # the other tabs work; no restart
    assert not at.exception and not charts(at, "iv_attribution_")
    logits_unchanged("smollm2")
    at.button(key="iv_estimate").click().run()
    assert not at.exception and not at.warning and len(charts(at, "iv_attribution_")) == 4


def steering_inputs(at):
    at.text_area(key="iv_pos").set_value("i love this film\ngood very good")
    at.text_area(key="iv_neg").set_value("i hate that movie\nbad")
    at.slider(key="iv_steer_layer").set_value(1)
    at.slider(key="iv_alpha").set_value(15.0)
    at.text_input(key="iv_steer_prompt").set_value("the cat sat on")
    at.slider(key="iv_steer_tokens").set_value(6).run()
    return at


def test_cancel_steering_between_the_plain_and_the_steered_text(tiny_models, monkeypatch):
    cancelled = cancelled_at(steering.compare_steering, "iv_steer_cancel", at_call=2)  # 2: before the steered one
    monkeypatch.setattr(steering, "compare_steering", cancelled)
    at = steering_inputs(interventions())
    at.button(key="iv_steer_run").click().run()
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [f"Cancelled: generating 6 tokens plain and steered (α = 15). {SAID}"]
    assert not [m for m in at.markdown if m.value in ("**Plain**", "**Steered (α = 15)**")]  # no half comparison
    logits_unchanged("smollm2")  # the steering hooks went with the run
    at.button(key="iv_steer_run").click().run()
    assert not at.exception and not at.warning
    model = models.load_model("smollm2")
    vector = steering.steering_vector(model, ["i love this film", "good very good"], ["i hate that movie", "bad"], 1)
    expected = steering.compare_steering(model, "the cat sat on", vector, 15.0, max_new_tokens=6)
    assert "the cat sat on" + expected.steered_text in [t.value for t in at.text]


def test_cancel_five_tokens_keeps_none_of_them(tiny_models, monkeypatch):
    real = generation.next_step
    calls = []

    def second_cancelled(model, view, **kwargs):
        calls.append(1)
        step = real(model, view, **kwargs)
        if len(calls) == 2:
            click_while_running("iv_gen_cancel")
        return step

    monkeypatch.setattr(generation, "next_step", second_cancelled)
    at = interventions()
    at.text_input(key="iv_gen_prompt").set_value("the cat sat on").run()
    at.button(key="iv_gen_more").click().run()
    assert not at.exception and not at.error
    assert [w.value for w in at.warning] == [f"Cancelled: generating 5 tokens. {SAID}"]
    assert len(calls) == 2  # stopped at the next token
    assert any("Press **Next token**" in i.value for i in at.info) and not at.dataframe  # no step kept
    logits_unchanged("smollm2")
    at.button(key="iv_gen_more").click().run()
    assert not at.exception and not at.warning
    expected = generation.step_through_generation(models.load_model("smollm2"), "the cat sat on", max_new_tokens=5)
    assert list(at.dataframe[0].value["id"]) == expected.new_ids
