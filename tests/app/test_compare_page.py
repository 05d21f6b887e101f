"""The Compare page on tiny models: several pipelines on one text, image or audio; table, agreement, CSV; bad input."""
from __future__ import annotations

import contextlib
import io
import json
from collections import Counter

import pandas as pd
import pytest

import analysis.compare_report as compare_report
import app.exports as exports
import models
from analysis.compare import answer_agreement
from analysis.compare_report import GENERATION_REPEATS, REPEATS, reference_wer
from models import pipeline
from models.pipelines.base import Pipeline
from tests.app.page_helpers import ROOT, captions, chart_traces, chart_z, decode, open_page, pruned_copies
from tests.app.test_reproduce_snippets import unprinted_expressions
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
    assert table["answer"][0] == expected[0]["label"] and "Input: china.jpg" in captions(at)
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


# --- timing, truncation, the reference transcript and the CSV (issue 15, item 6) ----------------------------

def count_pipeline_calls(monkeypatch) -> Counter:
    """Every pipeline call the page makes, by task (a subclass's own __call__ ends in the base class's)."""
    calls: Counter = Counter()
    real = Pipeline.__call__

    def counted(self, *args, **kwargs):
        calls[self.task] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Pipeline, "__call__", counted)
    return calls


def exported_csvs(monkeypatch) -> list[bytes]:
    """The bytes of every CSV the page hands a download button through app.exports.safe_frame_csv."""
    made: list[bytes] = []
    real = exports.safe_frame_csv

    def kept(frame, index=False):
        made.append(real(frame, index=index))
        return made[-1]

    monkeypatch.setattr(exports, "safe_frame_csv", kept)
    return made


def chart_spec(at, key: str) -> dict:
    return next(json.loads(c.proto.spec) for c in at.get("plotly_chart") if c.proto.id and key in c.proto.id)


def values(trace: dict, axis: str) -> list:
    return [None if v is None else float(v) for v in (decode(trace[axis]).tolist())]


def test_generation_runs_once_and_the_page_says_which_time_it_shows(tiny_media, monkeypatch):  # noqa: F811
    calls = count_pipeline_calls(monkeypatch)
    # a budget no tiny call can fill, even on a loaded machine (the budget itself is tested on a scripted clock)
    monkeypatch.setattr(compare_report, "REPEAT_BUDGET_SECONDS", 600.0)
    at = open_page("compare.py")
    at.text_area(key="cmp_text").set_value("i love this film").run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    assert calls["text-generation"] == 1  # no warm-up generation thrown away, and no repeat
    assert calls["text-classification"] == 1 + REPEATS  # a fast model: its first call, then the steady state
    table = at.dataframe[0].value
    timing = dict(zip(table["model"], table["timing"]))
    assert timing["text-generation · smollm2"] == "first call"
    assert timing["text-classification · minilm-sentiment"] == f"median of {REPEATS} repeats"
    latency = dict(zip(table["model"], table["latency_ms"]))
    spec = chart_spec(at, "cmp_latency")
    assert spec["layout"]["xaxis"]["type"] == "log"
    bars = {t["name"]: dict(zip(t["y"], values(t, "x"))) for t in spec["data"]}
    assert list(bars) == ["load", "first call", "steady state (median)"]
    # the table shows 4 decimals
    assert bars["first call"]["text-generation · smollm2"] == pytest.approx(latency["text-generation · smollm2"],
                                                                            abs=1e-3)
    assert bars["steady state (median)"]["text-generation · smollm2"] is None  # not measured, not drawn
    assert bars["steady state (median)"]["text-classification · minilm-sentiment"] == pytest.approx(
        latency["text-classification · minilm-sentiment"], abs=1e-3)
    assert all(v > 0 for v in bars["load"].values())  # the first comparison loads both models
    left = spec["layout"]["xaxis"]["range"][0]  # bars start on a decade below every value
    assert left == int(left) and 10 ** left <= min(v for b in bars.values() for v in b.values() if v)
    assert any("first call" in c and "steady state" in c.lower() for c in captions(at))

    at.checkbox(key="cmp_repeat_generation").check().run()
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    assert calls["text-generation"] == 1 + 1 + GENERATION_REPEATS  # asked for: the first call and the repeats
    timing = dict(zip(at.dataframe[0].value["model"], at.dataframe[0].value["timing"]))
    assert timing["text-generation · smollm2"] == f"median of {GENERATION_REPEATS} repeats"


def test_a_truncated_input_is_warned_about_on_the_page_and_in_the_csv(tiny_media, monkeypatch):  # noqa: F811
    made = exported_csvs(monkeypatch)
    at = open_page("compare.py")
    at.text_area(key="cmp_text").set_value(" ".join(["word"] * 100)).run()  # the tiny models read 64 tokens
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    warned = [w.value for w in at.warning]
    for entry in ("text-classification · minilm-sentiment", "text-generation · smollm2"):
        assert any(w.startswith(f"{entry}: ") and "truncated to the model's limit of 64" in w for w in warned), warned
    exported = pd.read_csv(io.BytesIO(made[-1]), keep_default_na=False)
    assert all("truncated to the model's limit of 64" in w for w in exported["warnings"])
    at.text_area(key="cmp_text").set_value("i love this film").run()
    at.button(key="cmp_run").click().run()
    assert not at.warning


def test_the_csv_carries_the_full_input_the_agreement_matrix_and_the_errors(tiny_media, monkeypatch):  # noqa: F811
    made = exported_csvs(monkeypatch)
    at = open_page("compare.py")
    at.session_state["cmp_extra"] = ["fill-mask · minilm"]
    at.run()
    text = "=1+1 and then i loved this film, the acting was wonderful"  # longer than 40, and a formula
    at.text_area(key="cmp_text").set_value(text).run()
    picked = ["text-classification · minilm-sentiment", "fill-mask · minilm", "text-generation · smollm2"]
    at.multiselect(key="cmp_models_text").set_value(picked).run()
    at.button(key="cmp_run").click().run()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["model"]) == [picked[0], picked[2]] and f"Input: {text}" in captions(at)
    exported = pd.read_csv(io.BytesIO(made[-1]), keep_default_na=False)
    assert list(exported["model"]) == picked  # the failed model too, in its place
    assert list(exported["input"]) == ["'" + text] * 3  # in full, and a spreadsheet will not run it
    assert "masked-language-model head" in exported["error"][1] and exported["answer"][1] == ""
    assert list(exported["error"][[0, 2]]) == ["", ""]
    agreement = answer_agreement(dict(zip(table["model"], table["answer"])))
    for column in (picked[0], picked[2]):
        got = exported[f"agreement with {column}"]
        assert float(got[0]) == pytest.approx(agreement.loc[picked[0], column])
        assert float(got[2]) == pytest.approx(agreement.loc[picked[2], column]) and got[1] == ""
    assert {"load_ms", "first_call_ms", "steady_ms", "repeats", "latency_ms", "timing"} <= set(exported)
    cells = [str(v) for v in exported.to_numpy().ravel()] + list(exported.columns)
    assert not [c for c in cells if c[:1] in ("=", "+", "@") or (c[:1] == "-" and not _number(c))]


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def test_speech_is_scored_against_the_reference_transcript(tiny_media, monkeypatch):  # noqa: F811
    calls = count_pipeline_calls(monkeypatch)
    made = exported_csvs(monkeypatch)
    at = open_page("compare.py")
    at.radio(key="cmp_kind").set_value("audio").run()
    at.selectbox(key="cmp_audio_choice").set_value("clip_02.wav").run()
    spoken = "please turn off the lights when you leave the room"  # sample_data/speech/transcripts.csv
    assert reference_box(at).value == spoken
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error
    table = at.dataframe[0].value
    heard = table["answer"][0]
    assert table["wer"][0] == pytest.approx(reference_wer({"m": heard}, spoken)["wer"][0], abs=1e-4)
    exported = pd.read_csv(io.BytesIO(made[-1]), keep_default_na=False)
    assert exported["reference"][0] == spoken and float(exported["wer"][0]) == pytest.approx(table["wer"][0], abs=1e-4)
    before = sum(calls.values())
    reference_box(at).set_value(heard or "silence").run()  # rescored as typed, without running the model again
    assert at.dataframe[0].value["wer"][0] == pytest.approx(0.0 if heard else 1.0) and sum(calls.values()) == before

    at.selectbox(key="cmp_audio_choice").set_value("formats/clip_01.mp3").run()
    assert reference_box(at).value == "the quick brown fox jumps over the lazy dog"
    # an upload has no committed transcript, whatever its name
    at.selectbox(key="cmp_audio_choice").set_value("Upload a file…").run()
    clip = (ROOT / "sample_data" / "speech" / "clip_01.wav").read_bytes()
    at.file_uploader(key="cmp_audio_file").set_value(("clip_01.wav", clip, "audio/wav")).run()
    assert reference_box(at).value == ""
    at.button(key="cmp_run").click().run()
    assert not at.exception and not at.error and "wer" not in at.dataframe[0].value


def reference_box(at):
    return next(t for t in at.text_input if t.label == "Reference transcript")


def test_the_code_to_reproduce_gives_the_pages_answers_and_scores(tiny_media, monkeypatch):  # noqa: F811
    at = open_page("compare.py")
    at.radio(key="cmp_kind").set_value("audio").run()
    at.selectbox(key="cmp_audio_choice").set_value("clip_02.wav").run()
    at.button(key="cmp_run").click().run()
    table = at.dataframe[0].value
    code = next(c.value for c in at.code if "run_comparison" in c.value)
    assert "source = 'sample_data/speech/clip_02.wav'" in code
    assert not unprinted_expressions(code)  # a script prints what the page shows
    monkeypatch.chdir(ROOT)
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(compile(code, "<compare code>", "exec"), namespace)
    assert "whisper-tiny.en" in printed.getvalue() and "wer" in printed.getvalue()
    assert list(namespace["table"]["model"]) == list(table["model"])
    assert list(namespace["table"]["answer"]) == list(table["answer"])
    assert namespace["wer"]["wer"].tolist() == pytest.approx(table["wer"].tolist(), abs=1e-4)
    assert list(namespace["table"]["timing"]) == ["first call"]  # a generating model, called once there too

    at.radio(key="cmp_kind").set_value("text").run()
    at.text_area(key="cmp_text").set_value("it's \"fine\"\nreally").run()
    at.button(key="cmp_run").click().run()
    table = at.dataframe[0].value
    code = next(c.value for c in at.code if "run_comparison" in c.value)
    namespace = {}
    with contextlib.redirect_stdout(io.StringIO()):
        exec(compile(code, "<compare code>", "exec"), namespace)
    assert list(namespace["table"]["answer"]) == list(table["answer"])
    assert namespace["agreement"].to_numpy().tolist() == chart_z(at, "cmp_agreement").tolist()
