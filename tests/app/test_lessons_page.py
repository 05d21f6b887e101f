"""The Lessons page on tiny models: every lesson walked step by step with its Next button; each step's chart equals
what the analysis computes for that step, and the head a step names is the one the numbers put on top.

A tiny random model has no real induction head or pronoun head, so these tests check the computation, not the
claim: scores equal a direct computation written out here, and the named head is their argmax. The translator is
the embedded one (it is tiny already).
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

import models
import tests.tiny_models as tiny_models
from analysis.alignment import alignment
from analysis.attention import head_pattern
from analysis.head_importance import compute_head_importance
from analysis.hidden_states import residual_norms
from analysis.lens import logit_lens
from analysis.modal_attention import audio_self_attention, cross_attention_alignment, patch_attention_map, patch_rollout_map
from analysis.pruning_curve import compute_pruning_curve
from app.head_labels import head_label
from app.lessons import LESSONS, available_lessons
from app.lessons.views import CHART, answer_id, pruning_data, repeated_sequence
from app.presenter import TICK_PX
from tests.app.page_helpers import chart_traces, chart_z, decode, open_page
from tests.app.test_vision_audio_page import tiny_media, tiny_media_folders  # noqa: F401  (fixtures)
from tests.tiny_models import make_checkpoint

LESSON_WORDS = "animal didn ' t cross street because too tired wide".split()


@pytest.fixture(scope="session")
def lesson_bert(tmp_path_factory):
    """A tiny BERT whose word vocabulary has the words of the "it" sentences (the shared one reads them as [UNK])."""
    folder = tmp_path_factory.mktemp("lesson-bert")
    words = tiny_models.WORDS
    tiny_models.WORDS = list(words) + LESSON_WORDS
    try:
        make_checkpoint("bert", folder)
    finally:
        tiny_models.WORDS = words
    return folder


@pytest.fixture(scope="session")
def lesson_sentiment(tmp_path_factory):
    """A tiny sentiment classifier with the sample set's label names (the shared tiny one has numbers)."""
    folder = tmp_path_factory.mktemp("lesson-sentiment")
    make_checkpoint("bert-cls", folder, id2label={0: "negative", 1: "positive"},
                    label2id={"negative": 0, "positive": 1})
    return folder


@pytest.fixture
def lesson_models(monkeypatch, tiny_media, lesson_bert, lesson_sentiment):  # noqa: F811
    shared = models.load_model
    folders = {"minilm": lesson_bert, "minilm-sentiment": lesson_sentiment}

    def load(name, task=None):
        if str(name) in folders:
            return models.load_folder(folders[str(name)], name=str(name), task=task)
        return shared(name, task=task)

    monkeypatch.setattr(models, "load_model", load)
    return load


def lesson(key: str):
    return next(item for item in LESSONS if item.key == key)


def walk(key: str, check, query: dict | None = None):
    """Open the lesson, then for every step: no error, ``check(at, step)``, and Next; returns the last AppTest."""
    at = open_page("lessons.py", query=query, timeout=300)
    at.selectbox(key="lesson").set_value(key).run()
    steps = lesson(key).steps
    for number, step in enumerate(steps, start=1):
        assert not at.exception and not at.error, (step.title, [e.value for e in at.exception], [e.value for e in at.error])
        assert at.radio(key="lesson_step").value == number
        assert any(f"{number}/{len(steps)} · {step.title}" in h.value for h in at.subheader)
        check(at, step)
        next_button = at.button(key="lesson_next")
        assert next_button.proto.shortcut.lower() == "right" and at.button(key="lesson_previous").proto.shortcut.lower() == "left"
        if number < len(steps):
            next_button.click().run()
        else:
            assert next_button.disabled  # the last step has nowhere to go
    return at


def explanation(at) -> str:
    return " ".join(m.value for m in at.markdown)


def close(a, b):
    np.testing.assert_allclose(np.asarray(a, dtype=float), np.asarray(b, dtype=float), atol=1e-5)


def test_every_lesson_is_offered_and_complete():
    offered = [item.key for item in available_lessons()]
    assert offered[:6] == ["it", "heads", "lens", "pruning", "vit", "whisper"]
    for item in LESSONS:
        assert item.steps and all(step.question.endswith("?") for step in item.steps)


def test_lesson_it(lesson_models):
    model = models.load_model("minilm")
    sentences = {}

    def trace_of(text):
        if text not in sentences:
            sentences[text] = model.run(text)
        return sentences[text]

    def positions(trace, *words):
        tokens = [t.lower() for t in trace.tokens[0]]
        return [tokens.index(w) for w in words]

    def check(at, step):
        p = step.params
        base = trace_of(p.get("best_text", p["text"]))
        q, k = positions(base, p["query"], p["key"])
        grid = np.stack([a[0, :, q, k].numpy() for a in base.attentions])  # (layers, heads): it -> animal
        layer, head = np.unravel_index(int(grid.argmax()), grid.shape)
        assert f"{head_label(int(layer), int(head))}" in explanation(at) or p["show"] == "pattern" and p["head"] == "mean"
        trace = trace_of(p["text"])
        q2 = positions(trace, p["query"])[0]
        if p["show"] == "grid":
            close(chart_z(at, CHART), grid)
        elif p["show"] == "row":
            close(decode(chart_traces(at, CHART)[0]["y"]), trace.attentions[layer][0, head, q2].numpy())
        elif p["head"] == "best":
            close(chart_z(at, CHART), trace.attentions[layer][0, head].numpy())
        else:
            close(chart_z(at, CHART), trace.attentions[p["layer"]][0].mean(0).numpy())

    walk("it", check)


def direct_scores(attentions, length: int, offset: int) -> dict[str, np.ndarray]:
    """Previous-token, first-token and induction scores with plain loops: what head_kind_scores must equal."""
    out = {name: np.zeros((len(attentions), attentions[0].shape[1])) for name in ("previous_token", "first_token",
                                                                                   "induction")}
    n = offset + 2 * length
    for layer, pattern in enumerate(attentions):
        a = pattern[0].double().numpy()
        for head in range(a.shape[0]):
            out["previous_token"][layer, head] = np.mean([a[head, q, q - 1] for q in range(offset + 1, n)])
            out["first_token"][layer, head] = np.mean([a[head, q, 0] for q in range(offset + 1, n)])
            # query at i in the second copy reads the token after i's first occurrence
            out["induction"][layer, head] = np.mean([a[head, offset + length + i, offset + i + 1]
                                                     for i in range(length)])
    return out


def test_lesson_heads(lesson_models):
    model = models.load_model("smollm2")

    def check(at, step):
        p = step.params
        ids, offset = repeated_sequence(model, p["length"], p["seed"])
        assert torch.equal(ids[0, offset:offset + p["length"]], ids[0, offset + p["length"]:])  # a repeat
        trace = model.run(input_ids=ids)
        scores = direct_scores(trace.attentions, p["length"], offset)[p["column"]]
        layer, head = np.unravel_index(int(scores.argmax()), scores.shape)
        assert f"{head_label(int(layer), int(head))}" in explanation(at)  # the named top head is the argmax
        if p["show"] == "grid":
            close(chart_z(at, CHART), scores)
        else:
            close(chart_z(at, CHART), head_pattern(trace, int(layer), int(head)).numpy())

    walk("heads", check)


def test_lesson_lens(lesson_models):
    model = models.load_model("smollm2")

    def check(at, step):
        p = step.params
        trace = model.run(p["text"])
        last = len(trace.tokens[0]) - 1
        if p["show"] == "lens":
            positions = list(range(max(0, last + 1 - p["window"]), last + 1))
            close(chart_z(at, CHART), logit_lens(model, trace, positions=positions, top_k=3).top_probs[..., 0])
        elif p["show"] == "answer":
            shown = decode(chart_traces(at, CHART)[0]["y"])
            assert len(shown) == model.n_layers + 1
            # the last layer's lens is the model's own prediction
            expected = trace.logits[0, last].float().softmax(-1)[answer_id(model, p["answer"])]
            close(shown[-1], expected)
        else:
            close(decode(chart_traces(at, CHART)[2]["y"]), np.median(residual_norms(trace).numpy(), 1))

    walk("lens", check)


def test_lesson_pruning(lesson_models):
    model = models.load_model("minilm-sentiment")
    expected = {}

    def check(at, step):
        p = step.params
        score_set, held_out = pruning_data(model, p)
        if p["show"] == "importance":
            scores = compute_head_importance(model, score_set, "gradient").scores.numpy()
            close(chart_z(at, CHART), scores)
            layer, head = np.unravel_index(int(np.nanargmax(scores)), scores.shape)
            assert head_label(int(layer), int(head)) in explanation(at)
            return
        if "curve" not in expected:
            expected["curve"] = compute_pruning_curve(model, held_out, score_data=score_set, step_fraction=p["step"],
                                                      max_fraction=p["limit"], method="gradient", metric="accuracy")
        table = expected["curve"].table
        close(decode(chart_traces(at, CHART)[0]["y"]), table["accuracy"])
        if p["show"] == "parameters":
            close(decode(chart_traces(at, CHART)[0]["x"]), table["parameters"])

    walk("pruning", check)


def test_lesson_vit(lesson_models):
    model = models.load_model("vit-digits")

    def check(at, step):
        p = step.params
        trace = model.run(images=[f"sample_data/images/{p['image']}"])
        expected = (patch_rollout_map(trace) if p["mode"] == "rollout" else
                    patch_attention_map(trace, trace.n_layers - 1 if p["layer"] == "last" else p["layer"]))
        close(chart_z(at, CHART, trace=1), expected)

    walk("vit", check)


def test_lesson_whisper(lesson_models):
    model = models.load_model("whisper-tiny.en")

    def check(at, step):
        p = step.params
        trace = model.run(audio=[f"sample_data/speech/{p['clip']}"])
        if p["show"] == "encoder":
            close(chart_z(at, CHART), audio_self_attention(trace, p["layer"])[0])
        else:
            heads = model.generation_config.get("alignment_heads")
            close(chart_z(at, CHART, trace=1), cross_attention_alignment(trace, p["heads"], heads).weights)

    walk("whisper", check)


@pytest.mark.skipif("numbers-to-words" not in {item.model for item in available_lessons()},
                    reason="the embedded translator is not in this checkout's registry")
def test_lesson_translation(lesson_models):
    model = models.load_model("numbers-to-words")

    def check(at, step):
        p = step.params
        trace = model.run(p["text"])
        heads = model.stack_head_ids()["cross"]
        weights = alignment(trace, p["layer"], p["head"], heads).numpy()  # (written, source)
        close(chart_z(at, CHART), weights)
        sources, written = trace.extras["source_tokens"][0], trace.tokens[0][1:]
        first = f"{written[0]} ← {sources[int(weights[0].argmax())]}"  # the strongest source of the first word
        assert first in explanation(at)
        assert "{output}" not in step.explain or trace.extras["outputs"][0] in explanation(at)

    walk("translation", check)


def test_previous_goes_back_and_a_new_lesson_starts_at_step_one(lesson_models):
    at = open_page("lessons.py", timeout=300)
    at.selectbox(key="lesson").set_value("vit").run()
    at.button(key="lesson_next").click().run()
    at.button(key="lesson_next").click().run()
    assert at.radio(key="lesson_step").value == 3
    at.button(key="lesson_previous").click().run()
    assert at.radio(key="lesson_step").value == 2
    at.selectbox(key="lesson").set_value("whisper").run()
    assert at.radio(key="lesson_step").value == 1 and not at.exception


def test_presenter_mode_styles_the_lesson_chart_and_survives_a_page_change(lesson_models):
    at = open_page("lessons.py", timeout=300)
    at.selectbox(key="lesson").set_value("vit").run()
    plain = chart_traces(at, CHART)
    at.toggle(key="presenter").set_value(True).run()
    assert not at.exception
    spec = next(c for c in at.get("plotly_chart") if CHART in c.proto.id)
    import json
    layout = json.loads(spec.proto.spec)["layout"]
    assert layout["xaxis"]["tickfont"]["size"] >= 18 and layout["yaxis"]["tickfont"]["size"] >= 18
    assert layout["title"]["font"]["size"] > 20
    close(chart_z(at, CHART, trace=1), decode(plain[1]["z"]))  # same numbers, larger type
    assert TICK_PX >= 18
    at.switch_page("../pages/hidden_states.py").run()
    assert at.toggle(key="presenter").value is True  # the switch survives the page change
    assert any("display: none" in h.proto.body for h in at.get("html"))  # and its CSS is injected there too
