"""The Attribution page, driven by widget keys on tiny models; its numbers are checked against the analysis."""
from __future__ import annotations

import numpy as np
import pytest

import models
from analysis.attribution import attribute_text, rank_correlation
from analysis.attribution.image import attribute_image
from analysis.attribution.render import normalise
from tests.app.page_helpers import ROOT, captions, chart_traces, chart_z, decode, open_page, pruned_copies
from tests.tiny_models import make_checkpoint

TEXT = "i love this film"
LOCAL = "Local folder…"


@pytest.fixture(scope="module")
def classifier_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("attribution-cls")
    make_checkpoint("bert-cls", folder, initializer_range=0.2)  # logits that move with the input
    return str(folder)


def open_classifier(folder: str, text: str = TEXT):
    at = open_page("attribution.py")
    at.selectbox(key="model_choice").set_value(LOCAL).run()
    at.text_input(key="model_folder").set_value(folder).run()
    at.text_area(key="attribution_free").set_value(text).run()
    return at


def test_a_model_without_a_decision_gets_a_way_out(tiny_models):
    at = open_page("attribution.py")
    assert not at.exception and [h.value for h in at.header] == ["Attribution"]
    assert "no task head" in at.warning[0].value
    at.button(key="attribution_use_smollm2").click().run()
    assert not at.exception
    assert at.selectbox(key="model_choice").value == "smollm2"
    assert at.text_input(key="attribution_target_token").value == ""


def test_classifier_attributions_match_the_analysis(tiny_models, classifier_folder):
    at = open_classifier(classifier_folder)
    assert any("Press Explain" in i.value for i in at.info)
    at.selectbox(key="attribution_target").set_value(1).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    assert at.subheader[0].value == "Explaining “class 1”"
    expected = attribute_text(models.load_model(classifier_folder), TEXT, target=1)
    keys = list(expected.results)
    z = chart_z(at, "attribution_heatmap")
    keep = ~np.asarray(expected.special)
    for row, key in enumerate(keys):
        result = expected.results[key]
        np.testing.assert_allclose(z[row], normalise(result.scores.numpy(), result.signed, keep), atol=1e-5)
    ig = expected.results["integrated_gradients"]
    assert any(c.startswith(f"Integrated gradients: convergence delta {ig.convergence_delta:+.3g} after {ig.n_steps} steps")
               for c in captions(at))
    token_views = [m.value for m in at.markdown if m.value.startswith("<div")]
    assert len(token_views) == len(keys) and all(">love</span>" in v for v in token_views)
    corr = chart_traces(at, "attribution_correlation")[0]
    np.testing.assert_allclose(decode(corr["z"]).astype(float), rank_correlation(expected).to_numpy(), atol=1e-9)
    assert len(at.dataframe[0].value) == len(keys)


def test_results_are_kept_per_input(tiny_models, classifier_folder):
    at = open_classifier(classifier_folder)
    at.button(key="attribution_run").click().run()
    first = chart_z(at, "attribution_heatmap")
    at.text_area(key="attribution_free").set_value("the dog ran away").run()
    assert any("Press Explain" in i.value for i in at.info)  # a new input waits for the button
    at.text_area(key="attribution_free").set_value(TEXT).run()
    assert not at.info or not any("Press Explain" in i.value for i in at.info)  # the earlier result, at once
    np.testing.assert_array_equal(chart_z(at, "attribution_heatmap"), first)


def test_method_settings_reach_the_analysis(tiny_models, classifier_folder):
    at = open_classifier(classifier_folder)
    at.multiselect(key="attribution_methods").set_value(["integrated_gradients", "saliency"]).run()
    at.number_input(key="attribution_integrated_gradients_n_steps").set_value(8).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    summary = at.dataframe[0].value.set_index("method")
    assert summary.loc["Integrated gradients", "steps"] >= 8
    expected = attribute_text(models.load_model(classifier_folder), TEXT, methods=["integrated_gradients", "saliency"],
                              params={"integrated_gradients": {"n_steps": 8}})
    assert summary.loc["Integrated gradients", "steps"] == expected.results["integrated_gradients"].n_steps


def test_bad_input_is_a_message_not_a_crash(tiny_models, classifier_folder):
    at = open_classifier(classifier_folder, text="   ")
    at.button(key="attribution_run").click().run()
    assert not at.exception
    assert any("Empty input" in e.value for e in at.error)


def test_next_token_target_of_a_causal_lm(tiny_models):
    at = open_page("attribution.py")
    at.selectbox(key="model_choice").set_value("smollm2").run()
    at.text_area(key="attribution_free").set_value("the cat sat on the").run()
    at.text_input(key="attribution_target_token").set_value("mat").run()
    at.multiselect(key="attribution_methods").set_value(["integrated_gradients", "attention_x_gradient"]).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    assert at.subheader[0].value == "Explaining “mat”"
    at.text_input(key="attribution_target_token").set_value("zebra crossing").run()
    at.button(key="attribution_run").click().run()
    assert any("not a single token" in e.value for e in at.error)


def test_image_heatmaps_on_vit_digits(tiny_models):
    at = open_page("attribution.py")
    at.selectbox(key="model_choice").set_value("vit-digits").run()
    at.selectbox(key="attribution_image_choice").set_value("digit_3.png").run()
    at.multiselect(key="attribution_methods").set_value(["integrated_gradients", "attention_rollout"]).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    expected = attribute_image(models.load_model("vit-digits"), str(ROOT / "sample_data" / "images" / "digit_3.png"),
                               methods=["integrated_gradients", "attention_rollout"])
    assert at.subheader[0].value == f"Explaining “{expected.target.label}”"
    for key, result in expected.results.items():
        overlay = chart_z(at, f"attribution_image_{key}", trace=1)
        np.testing.assert_allclose(overlay, normalise(result.scores.numpy(), result.signed), atol=1e-5)


def test_time_heatmaps_for_a_whisper_transcript(tiny_models, tmp_path):
    from analysis.attribution.audio import attribute_audio
    from tests.tiny_modal_models import make_whisper
    make_whisper(tmp_path / "whisper")
    at = open_page("attribution.py")
    at.selectbox(key="model_choice").set_value(LOCAL).run()
    at.text_input(key="model_folder").set_value(str(tmp_path / "whisper")).run()
    assert not at.exception and not at.warning
    at.selectbox(key="attribution_audio_choice").set_value("clip_01.wav").run()
    at.multiselect(key="attribution_methods").set_value(["saliency", "attention_rollout"]).run()
    at.button(key="attribution_run").click().run()
    assert not at.exception and not at.error
    expected = attribute_audio(models.load_model(str(tmp_path / "whisper")),
                               str(ROOT / "sample_data" / "speech" / "clip_01.wav"),
                               methods=["saliency", "attention_rollout"])
    assert at.subheader[0].value == f"Explaining “{expected.target.label}”"
    for key, result in expected.results.items():
        band = chart_z(at, f"attribution_audio_{key}")[0]
        np.testing.assert_allclose(band, normalise(result.scores.numpy(), result.signed), atol=1e-5)


def test_the_way_out_offers_this_sessions_models_by_what_they_explain(tiny_models):
    """Suggestions come from the registry and the models' own capabilities: a pruned classifier is one, a bare
    pruned encoder is not."""
    at = open_page("attribution.py")
    at.session_state["session_models"] = pruned_copies("minilm", "minilm-sentiment")
    at.run()
    assert "no task head" in at.warning[0].value
    offered = [b.key.removeprefix("attribution_use_") for b in at.button if b.key.startswith("attribution_use_")]
    assert offered == ["smollm2", "minilm-sentiment", "minilm-sentiment − 1 head"]
    at.button(key="attribution_use_minilm-sentiment − 1 head").click().run()
    assert not at.exception and at.selectbox(key="model_choice").value == "minilm-sentiment − 1 head"
    assert at.selectbox(key="attribution_target").options  # a classifier: its classes to explain
