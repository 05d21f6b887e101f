"""The Interventions page, driven by widget keys on tiny models; every number is checked against the analysis
run outside the app. `smollm2` is a tiny Llama, `minilm-sentiment` a tiny BERT classifier, `minilm` a tiny
BERT without a head."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
from analysis.generation import Sampling, step_through_generation
from analysis.patching import activation_patching, class_labels, attribution_patching, patched_run
from analysis.steering import compare_steering, steering_vector
from tests.app.page_helpers import captions, chart_traces, chart_z, decode, open_page

CLEAN, CORRUPTED, ANSWER, WRONG = "the cat sat on the mat and", "the dog sat on a mat and", "cat", "dog"


def interventions_page(query=None):
    at = open_page("interventions.py", query=query)
    assert not at.exception, at.exception
    assert [h.value for h in at.header] == ["Interventions"]
    return at


def set_prompts(at, clean=CLEAN, corrupted=CORRUPTED, answer=ANSWER, wrong=WRONG):
    at.text_area(key="iv_clean").set_value(clean)
    at.text_area(key="iv_corrupted").set_value(corrupted)
    at.text_input(key="iv_answer").set_value(answer)
    at.text_input(key="iv_wrong").set_value(wrong).run()
    assert not at.exception, at.exception
    return at


def chart_with_prefix(at, prefix):
    keys = [c.proto.id for c in at.get("plotly_chart") if c.proto.id and prefix in c.proto.id]
    assert keys, f"no chart named {prefix}"
    return keys[0]


def test_patching_maps_equal_the_analysis_and_a_cell_shows_its_patched_run(tiny_models):
    at = set_prompts(interventions_page({"model": "smollm2"}))
    assert not at.error, [e.value for e in at.error]
    model = models.load_model("smollm2")
    # before the button only the attribution estimate is drawn, for every site
    for site in ("resid_pre", "attn_out", "mlp_out", "head"):
        expected = attribution_patching(model, CLEAN, CORRUPTED, site, ANSWER, WRONG).numpy()
        np.testing.assert_allclose(chart_z(at, chart_with_prefix(at, f"iv_attribution_{site}_")), expected, atol=1e-6)
    assert not [c for c in at.get("plotly_chart") if "iv_exact_" in (c.proto.id or "")]
    assert at.button(key="iv_run").label.startswith("Run exact patching (")
    at.button(key="iv_run").click().run()
    assert not at.exception and not at.error
    for site in ("resid_pre", "attn_out", "mlp_out", "head"):
        expected = activation_patching(model, CLEAN, CORRUPTED, site, ANSWER, WRONG).numpy()
        np.testing.assert_allclose(chart_z(at, chart_with_prefix(at, f"iv_exact_{site}_")), expected, atol=1e-6)
    assert sum("Correlation of exact and attribution patching" in c for c in captions(at)) == 4
    # normalised view: 0 = corrupted, 1 = clean
    at.radio(key="iv_scale").set_value("normalised (0 = corrupted, 1 = clean)").run()
    run0 = patched_run(model, CLEAN, CORRUPTED, "resid_pre", ANSWER, WRONG, layer=0, index=0)
    exact = activation_patching(model, CLEAN, CORRUPTED, "resid_pre", ANSWER, WRONG).numpy()
    gap = run0.clean_metric - run0.corrupted_metric
    np.testing.assert_allclose(chart_z(at, chart_with_prefix(at, "iv_exact_resid_pre_")),
                               (exact - run0.corrupted_metric) / gap, atol=1e-5)
    # pick a cell: its patched run's prediction
    at.selectbox(key="iv_cell_site").set_value("mlp_out").run()
    at.selectbox(key="iv_cell_layer").set_value(0).run()
    at.selectbox(key="iv_cell_index").set_value(1).run()
    assert not at.exception
    run = patched_run(model, CLEAN, CORRUPTED, "mlp_out", ANSWER, WRONG, layer=0, index=1)
    assert any(f"MLP output of layer 0 at position 1:cat→dog: metric {run.metric:.4f} (clean" in c
               for c in captions(at))
    bars = chart_traces(at, "iv_patched_prediction")
    np.testing.assert_allclose(decode(bars[2]["y"]).astype(float), run.prediction["patched"], atol=1e-6)
    np.testing.assert_allclose(decode(bars[0]["y"]).astype(float), run.prediction["clean"], atol=1e-6)
    assert run.metric == pytest.approx(float(activation_patching(model, CLEAN, CORRUPTED, "mlp_out", ANSWER,
                                                                 WRONG)[0, 1]), abs=1e-6)
    assert [b for b in at.get("download_button") if b.proto.id and "iv_csv" in b.proto.id] or at.get("download_button")


def test_the_code_to_reproduce_gives_the_page_numbers(tiny_models, tmp_path, monkeypatch):
    at = set_prompts(interventions_page({"model": "smollm2"}))
    at.multiselect(key="iv_sites").set_value(["head"]).run()
    at.button(key="iv_run").click().run()
    at.selectbox(key="iv_cell_layer").set_value(1).run()
    at.selectbox(key="iv_cell_index").set_value(2).run()
    code = at.code[-1].value
    assert "patching_experiment(" in code and "patched_run(" in code and "step_through_generation(" in code
    namespace: dict = {}
    monkeypatch.chdir(tmp_path)  # the snippet writes patching.csv and the steering vector where it runs
    exec(compile(code, "<interventions code>", "exec"), namespace)
    assert (tmp_path / "patching.csv").exists() and (tmp_path / "steering_vector.safetensors").exists()
    model = models.load_model("smollm2")
    np.testing.assert_allclose(namespace["result"].exact["head"].numpy(),
                               chart_z(at, chart_with_prefix(at, "iv_exact_head_")), atol=1e-6)
    assert namespace["run"].metric == pytest.approx(
        patched_run(model, CLEAN, CORRUPTED, "head", ANSWER, WRONG, layer=1, index=2).metric, abs=1e-6)
    assert namespace["comparison"].steered_text is not None


def test_a_classifier_patches_with_label_names(tiny_models):
    at = interventions_page({"model": "minilm-sentiment"})
    model = models.load_model("minilm-sentiment")
    labels = class_labels(model)  # the tiny checkpoint names none: LABEL_0, LABEL_1
    assert labels == ["LABEL_0", "LABEL_1"]
    assert at.selectbox(key="iv_answer_label").options == labels
    at.text_area(key="iv_clean").set_value("i love this film")
    at.text_area(key="iv_corrupted").set_value("i hate this film").run()
    at.button(key="iv_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    expected = activation_patching(model, "i love this film", "i hate this film", "attn_out", labels[-1],
                                   labels[0]).numpy()
    np.testing.assert_allclose(chart_z(at, chart_with_prefix(at, "iv_exact_attn_out_")), expected, atol=1e-6)
    assert any("of the classifier" in c for c in captions(at))
    assert any("does not generate text" in i.value for i in at.info)  # the generation tab says why it is empty
    assert at.dataframe[0].value.shape[0] == len(labels)  # steering shows the prediction


def test_bad_input_gets_a_clear_message(tiny_models):
    at = set_prompts(interventions_page({"model": "smollm2"}), corrupted="the dog sat on the mat and then")
    assert any("same number of tokens" in e.value for e in at.error)
    assert not at.exception
    set_prompts(at, answer="the cat")
    assert any("is 2 tokens" in e.value for e in at.error)
    at = interventions_page({"model": "minilm"})  # no head: nothing to compare, nothing to generate
    assert any("has no output to compare" in i.value for i in at.info)


def test_steering_compares_plain_and_steered_text(tiny_models):
    at = set_prompts(interventions_page({"model": "smollm2"}))  # the default prompts' names are unknown words here
    at.text_area(key="iv_pos").set_value("i love this film\ngood very good")
    at.text_area(key="iv_neg").set_value("i hate that movie\nbad")
    at.slider(key="iv_steer_layer").set_value(1)
    at.slider(key="iv_alpha").set_value(15.0)
    at.text_input(key="iv_steer_prompt").set_value("the cat sat on")
    at.slider(key="iv_steer_tokens").set_value(6).run()
    at.button(key="iv_steer_run").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    model = models.load_model("smollm2")
    vector = steering_vector(model, ["i love this film", "good very good"], ["i hate that movie", "bad"], layer=1)
    expected = compare_steering(model, "the cat sat on", vector, 15.0, max_new_tokens=6)
    texts = [t.value for t in at.text]
    assert "the cat sat on" + expected.plain_text in texts and "the cat sat on" + expected.steered_text in texts
    assert any(f"‖v‖ = {vector.norm:.3f} at blocks.1.hook_resid_pre" in c for c in captions(at))


def test_generation_steps_one_token_at_a_time(tiny_models):
    at = set_prompts(interventions_page({"model": "smollm2"}))
    at.text_input(key="iv_gen_prompt").set_value("the cat sat on")
    at.radio(key="iv_gen_strategy").set_value("sample").run()  # the sampling controls are enabled only now
    at.slider(key="iv_gen_temperature").set_value(1.5)
    at.number_input(key="iv_gen_top_k").set_value(10)
    at.number_input(key="iv_gen_seed").set_value(3).run()
    at.button(key="iv_gen_next").click().run()
    at.button(key="iv_gen_more").click().run()
    assert not at.exception and not at.error
    model = models.load_model("smollm2")
    view = step_through_generation(model, "the cat sat on", max_new_tokens=6,
                                   sampling=Sampling("sample", temperature=1.5, top_k=10, seed=3))
    table = at.dataframe[-1].value  # the steps table (dataframes carry no key in AppTest)
    assert list(table["id"]) == view.new_ids[: len(table)] and len(table) == len(view.steps)
    last = view.steps[-1]
    bars = chart_traces(at, "iv_gen_top")
    np.testing.assert_allclose(decode(bars[0]["y"]).astype(float), last.top["probability"], atol=1e-6)
    np.testing.assert_allclose(decode(bars[1]["y"]).astype(float), last.top["sampling_probability"], atol=1e-6)
    heads = chart_z(at, "iv_gen_attention_heads")
    np.testing.assert_allclose(heads, last.attention[model.config.n_layers - 1].numpy(), atol=1e-6)
    lens = chart_traces(at, "iv_gen_lens")
    np.testing.assert_allclose(decode(lens[0]["y"]).astype(float), last.lens_token_probs.numpy(), atol=1e-6)
    at.slider(key="iv_gen_step").set_value(0).run()  # inspect an earlier step
    np.testing.assert_allclose(decode(chart_traces(at, "iv_gen_top")[0]["y"]).astype(float),
                               view.steps[0].top["probability"], atol=1e-6)
    at.radio(key="iv_gen_strategy").set_value("greedy").run()  # greedy: a new view, only the model's bars
    at.button(key="iv_gen_next").click().run()
    greedy = step_through_generation(model, "the cat sat on", max_new_tokens=1)
    bars = chart_traces(at, "iv_gen_top")
    assert len(bars) == 1 and list(at.dataframe[-1].value["id"]) == greedy.new_ids
    at.button(key="iv_gen_reset").click().run()
    assert any("Press **Next token**" in i.value for i in at.info)
