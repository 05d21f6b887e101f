"""The Images & audio page on tiny models: patch attention on the image, cross-attention alignment, encoder attention."""
from __future__ import annotations

import numpy as np
import pytest

import models
from analysis.modal_attention import audio_self_attention, cross_attention_alignment, patch_attention_map, patch_rollout_map
from tests.app.page_helpers import chart_traces, chart_z, open_page, pruned_copies
from tests.tiny_modal_models import make_vit, make_whisper


@pytest.fixture(scope="session")
def tiny_media_folders(tmp_path_factory):
    vit, whisper = tmp_path_factory.mktemp("app-vit"), tmp_path_factory.mktemp("app-whisper")
    make_vit(vit, "vit-cls")
    make_whisper(whisper)
    return {"vit-digits": vit, "whisper-tiny.en": whisper}


@pytest.fixture
def tiny_media(monkeypatch, tiny_models, tiny_media_folders):
    """vit-digits and whisper-tiny.en replaced by tiny random checkpoints (text models by the shared fixture)."""
    text_load = models.load_model

    def fake_load(name, task=None):
        if str(name) in tiny_media_folders:
            return models.load_folder(tiny_media_folders[str(name)], name=str(name), task=task)
        return text_load(name, task=task)

    monkeypatch.setattr(models, "load_model", fake_load)
    return fake_load


def test_image_attention_is_drawn_on_the_image(tiny_media):
    at = open_page("vision_audio.py")
    assert not at.exception and not at.error
    at.selectbox(key="va_image_choice").set_value("digit_7.png").run()
    trace = models.load_model("vit-digits").run(images=["sample_data/images/digit_7.png"])
    np.testing.assert_allclose(chart_z(at, "va_patch_overlay", trace=1), patch_attention_map(trace, 1, 0), atol=1e-6)
    at.radio(key="va_image_mode").set_value("layer mean").run()
    at.slider(key="va_image_layer").set_value(0).run()
    np.testing.assert_allclose(chart_z(at, "va_patch_overlay", trace=1), patch_attention_map(trace, 0), atol=1e-6)
    at.radio(key="va_image_mode").set_value("rollout").run()
    np.testing.assert_allclose(chart_z(at, "va_patch_overlay", trace=1), patch_rollout_map(trace), atol=1e-6)
    assert list(at.dataframe[0].value["label"])[0] in {"cat", "dog", "fish"}
    assert not at.exception and not at.error


def test_whisper_alignment_and_encoder_attention(tiny_media):
    at = open_page("vision_audio.py")
    at.selectbox(key="va_model").set_value("whisper-tiny.en").run()
    at.selectbox(key="va_audio_choice").set_value("clip_02.wav").run()
    assert not at.exception and not at.error
    model = models.load_model("whisper-tiny.en")
    trace = model.run(audio=["sample_data/speech/clip_02.wav"])
    alignment = cross_attention_alignment(trace, "alignment", None)
    np.testing.assert_allclose(chart_z(at, "va_alignment", trace=1), alignment.weights, atol=1e-6)
    assert chart_traces(at, "va_alignment")[1]["y"][0] == "0:" + trace.tokens[0][2]  # rows are the output tokens
    at.slider(key="va_audio_layer").set_value(0).run()
    at.selectbox(key="va_audio_head").set_value(2).run()
    weights, _ = audio_self_attention(trace, 0, 2)
    np.testing.assert_allclose(chart_z(at, "va_audio_attention"), weights, atol=1e-6)
    seconds = len(trace.extras["waveforms"][0]) / 16000
    assert weights.shape == (round(seconds / 0.02 + 0.5),) * 2  # only the audio's positions, 20 ms each
    assert not at.exception and not at.error


def test_a_text_model_gets_a_plain_message(tiny_media, tiny_model_folders):
    # an embedded text model in the sidebar is not offered here: the page opens on the first image model
    at = open_page("vision_audio.py", query={"model": "minilm"})
    assert not at.exception and not at.error
    assert at.selectbox(key="va_model").options == ["vit-digits", "whisper-tiny.en"]
    assert at.selectbox(key="va_model").value == "vit-digits"
    # a text model from a folder is offered (the page cannot tell its modality without loading it); picked, it
    # gets the message instead of an image or audio view
    folder = str(tiny_model_folders["bert"])
    at = open_page("vision_audio.py", query={"model": folder})
    assert at.selectbox(key="va_model").options == ["vit-digits", "whisper-tiny.en", folder]
    at.selectbox(key="va_model").set_value(folder).run()
    assert not at.exception and not at.error
    assert models.load_model(folder).modality == "text"
    assert [i.value for i in at.info] == [
        f"{folder} reads text; choose an image or audio model here, or use the Attention page."]
    assert not at.get("plotly_chart") and not at.get("audio")
    assert "va_image_choice" not in {w.key for w in at.selectbox} and "va_audio_choice" not in {w.key for w in at.selectbox}


def test_session_models_are_offered_by_what_they_read(tiny_media):
    """The picker lists image and audio models only: a pruned copy of a text model, picked in the sidebar, is not one."""
    at = open_page("vision_audio.py")
    at.session_state["session_models"] = pruned_copies("minilm-sentiment", "vit-digits")
    at.run()
    at.selectbox(key="model_choice").set_value("minilm-sentiment − 1 head").run()
    assert at.selectbox(key="va_model").options == ["vit-digits", "vit-digits − 1 head", "whisper-tiny.en"]
    at.selectbox(key="va_model").set_value("vit-digits − 1 head").run()
    assert not at.exception and not at.error
    assert chart_traces(at, "va_patch_overlay")


@pytest.fixture
def tiny_digits(monkeypatch, tiny_media, tmp_path):
    """vit-digits as a tiny classifier of the ten digits (labels "0".."9"), as the embedded one is."""
    make_vit(tmp_path, "vit-cls", id2label={i: str(i) for i in range(10)}, label2id={str(i): i for i in range(10)})
    media_load = models.load_model

    def fake_load(name, task=None):
        if str(name) == "vit-digits":
            return models.load_folder(tmp_path, name="vit-digits", task=task)
        return media_load(name, task=task)

    monkeypatch.setattr(models, "load_model", fake_load)


def test_a_digits_model_opens_on_a_digit_and_its_attention_leaves_the_image_visible(tiny_digits):
    """Issue 18, bug 10: vit-digits opened on china.jpg; the overlay hid the image; zero was pink on the colour bar."""
    at = open_page("vision_audio.py")
    assert not at.exception and not at.error
    assert at.selectbox(key="va_model").value == "vit-digits"
    assert at.selectbox(key="va_image_choice").value == "digit_0.png"
    overlay = chart_traces(at, "va_patch_overlay")
    heatmap = overlay[1]
    assert heatmap.get("opacity", 1) == 1  # the image is not dimmed all over
    zero_colour = heatmap["colorscale"][0][1]
    assert zero_colour.replace(" ", "").startswith("rgba(") and zero_colour.replace(" ", "").endswith(",0)")
    assert heatmap["zmin"] == 0  # the bar's bottom is "no attention", drawn as nothing
    said = " ".join(c.value for c in at.caption)
    assert "brighter" not in said and "uncoloured" in said
    assert at.get("image"), "the picture itself is shown beside the overlay"
