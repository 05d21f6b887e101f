"""The Compare page on tiny models: several pipelines on one text, image or audio; table, agreement, CSV; bad input."""
from __future__ import annotations

import pytest

import models
from analysis.compare import answer_agreement
from models import pipeline
from tests.app.page_helpers import chart_traces, chart_z, decode, open_page, pruned_copies
from tests.app.test_vision_audio_page import tiny_media, tiny_media_folders  # noqa: F401  (fixtures)


def test_two_text_pipelines_side_by_side(tiny_media):  # noqa: F811
    at = open_page("compare.py")
    assert not at.exception and not at.error
    at.text_area(key="cmp_text").set_value("i love this film").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    assert list(table["model"]) == ["text-classification · minilm-sentiment", "text-generation · smollm2"]
    expected = pipeline("text-classification", models.load_model("minilm-sentiment"))("i love this film")
    assert table["answer"][0] == expected[0]["label"]
    assert table["score"][0] == pytest.approx(expected[0]["score"], abs=1e-4)
    assert (table["latency_ms"] > 0).all() and "entropy_last" not in table  # the summary has its own table
    summary = at.dataframe[1].value
    assert list(summary["model"]) == list(table["model"]) and (summary["entropy_last"] > 0).all()
    assert list(summary["layers"]) == [2, 2]  # the tiny stand-ins: 2 layers each
    profile = chart_traces(at, "cmp_profile")
    assert [t["name"] for t in profile] == list(table["model"])
    assert [len(decode(t["y"])) for t in profile] == [2, 2] and decode(profile[0]["x"]).tolist() == [0.0, 1.0]
    assert decode(profile[0]["y"])[-1] == pytest.approx(summary["entropy_last"][0], abs=1e-3)
    agreement = answer_agreement(dict(zip(table["model"], table["answer"])))
    assert chart_z(at, "cmp_agreement").tolist() == agreement.to_numpy(float).tolist()
    assert any("cmp_csv" in b.proto.id for b in at.get("download_button"))


def test_image_and_audio_inputs(tiny_media):  # noqa: F811
    at = open_page("compare.py")
    at.radio(key="cmp_kind").set_value("image").run()
    at.selectbox(key="cmp_image_choice").set_value("china.jpg").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    expected = pipeline("image-classification", models.load_model("vit-digits"))("sample_data/images/china.jpg")
    assert table["answer"][0] == expected[0]["label"] and table["input"][0] == "china.jpg"
    at.radio(key="cmp_kind").set_value("audio").run()
    at.selectbox(key="cmp_audio_choice").set_value("formats/clip_01.mp3").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    expected = pipeline("automatic-speech-recognition", models.load_model("whisper-tiny.en"))(
        "sample_data/speech/formats/clip_01.mp3")
    assert table["answer"][0] == expected["text"].strip()


def test_a_model_that_cannot_do_the_task_is_reported_and_the_page_stays_up(tiny_media):  # noqa: F811
    at = open_page("compare.py")
    st_extra = at.session_state["cmp_extra"] if "cmp_extra" in at.session_state else []
    at.session_state["cmp_extra"] = st_extra + ["fill-mask · minilm"]
    at.run()
    at.multiselect(key="cmp_models_text").set_value(["text-classification · minilm-sentiment", "fill-mask · minilm"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    assert any("masked-language-model head" in e.value for e in at.error)
    assert list(at.dataframe[0].value["model"]) == ["text-classification · minilm-sentiment"]


def test_when_every_model_fails_the_errors_show_and_no_empty_table(tiny_media):  # noqa: F811
    at = open_page("compare.py")
    at.session_state["cmp_extra"] = ["fill-mask · minilm"]
    at.run()
    at.multiselect(key="cmp_models_text").set_value(["fill-mask · minilm"]).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    assert [e.value for e in at.error] and "masked-language-model head" in at.error[0].value
    assert not at.dataframe and "Results" not in [h.value for h in at.subheader]


def test_session_models_are_offered_only_for_the_input_they_read(tiny_media):  # noqa: F811
    """A pruned text model (this session's own) is a text model: never offered, let alone preselected, for images."""
    at = open_page("compare.py")
    at.session_state["session_models"] = pruned_copies("minilm-sentiment", "vit-digits")
    at.run()
    at.radio(key="cmp_kind").set_value("image").run()
    assert not at.exception and not at.error
    image = at.multiselect(key="cmp_models_image")
    assert image.options == ["image-classification · vit-digits", "image-classification · vit-digits − 1 head"]
    assert image.value == image.options
    at.radio(key="cmp_kind").set_value("text").run()
    text_options = at.multiselect(key="cmp_models_text").options
    assert "text-classification · minilm-sentiment − 1 head" in text_options
    assert not any("vit-digits" in o for o in text_options)
    at.radio(key="cmp_kind").set_value("audio").run()
    audio = at.multiselect(key="cmp_models_audio")
    assert audio.options == ["automatic-speech-recognition · whisper-tiny.en"] == audio.value
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    assert list(at.dataframe[0].value["model"]) == ["automatic-speech-recognition · whisper-tiny.en"]
