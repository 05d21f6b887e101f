"""The Task heads page on tiny models: swap a head, train it on the sample set, download the saved model."""
from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path

import pandas as pd
import pytest

import models
from models.labelled_data import read_labelled_texts, split_off
from models.training import evaluate
from tests.app.page_helpers import captions, chart_traces, open_page

ROOT = Path(__file__).resolve().parents[2]
TEXT = "the cat sat on the mat ."


def metric(at, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def frame(at, *columns: str) -> pd.DataFrame:
    for element in at.dataframe:
        if list(element.value.columns)[: len(columns)] == list(columns):
            return element.value
    raise KeyError(f"no table with columns {columns}")


@pytest.fixture
def page(tiny_models):
    at = open_page("task_heads.py")
    at.text_input(key="heads_text").set_value(TEXT).run()
    return at


def test_swapping_a_head_keeps_the_body_and_flags_it_untrained(page):
    at = page
    assert not at.exception and [h.value for h in at.header] == ["Task heads"]
    at.selectbox(key="heads_task").set_value("token-classification").run()
    at.text_input(key="heads_labels").set_value("O, B-PER, I-PER").run()
    assert not at.exception and not at.error
    assert metric(at, "Head") == "token-classification" and metric(at, "Status") == "untrained"
    assert metric(at, "Head parameters") == f"{32 * 3 + 3:,}"
    assert any("largest difference in any hidden state is 0." in c for c in captions(at))
    expected = models.load_model("minilm").with_head("token-classification", labels=["O", "B-PER", "I-PER"]).run(TEXT)
    shown = frame(at, "token", "label", "probability")
    assert shown["token"].tolist() == expected.tokens[0]
    probs = expected.logits[0].softmax(-1).max(-1)
    assert shown["probability"].tolist() == pytest.approx(probs.values.tolist(), abs=1e-6)
    assert at.warning  # an untrained head says so


def test_a_checkpoint_head_is_trained(page):
    at = page
    at.selectbox(key="model_choice").set_value("minilm-sentiment").run()
    assert not at.exception
    assert at.selectbox(key="heads_task").value == "sequence-classification"
    assert metric(at, "Status") == "trained" and not at.warning


def test_training_on_the_sample_set(page):
    at = page
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.selectbox(key="heads_trainable").set_value("head only").run()
    at.number_input(key="heads_epochs").set_value(2).run()
    at.select_slider(key="heads_lr").set_value(1e-3).run()
    at.button(key="heads_train").click().run()
    assert not at.exception and not at.error
    kept = at.session_state["heads_result"]
    result = kept["result"]
    data = read_labelled_texts(ROOT / "sample_data" / "sentiment.csv")
    fit, _ = split_off(data.split("train"), 0.15, seed=0)
    held_out = evaluate(result.model, data.split("test"))
    assert metric(at, "Held-out accuracy") == f"{held_out.accuracy:.1%}"
    assert metric(at, "Best epoch").endswith("of 2") and len(frame(at, "epoch", "train_loss")) == 2
    assert result.trained_parameter_names == ["head.classifier.bias", "head.classifier.weight"]
    assert result.model.labels == {0: "negative", 1: "positive"}
    steps = chart_traces(at, "heads_loss_curve")[0]
    assert len(steps["y"]) == 2 * math.ceil(len(fit) / 16)
    # issue 18, bug 14: the top says the head is trained now, and the accuracy axis has ticks of its own
    assert metric(at, "Status") == "trained" and not at.warning
    assert any(c.startswith("Trained below in") for c in captions(at))
    layout = next(json.loads(c.proto.spec)["layout"] for c in at.get("plotly_chart") if "heads_loss_curve" in c.proto.id)
    assert layout["yaxis2"]["tickvals"] == [0, 0.25, 0.5, 0.75, 1] and layout["yaxis2"]["ticktext"][-1] == "100%"
    # the code shown reproduces the run
    code = at.code[-1].value
    scope: dict = {}
    exec(compile(code.replace("result.model.save_pretrained('trained/')", ""), "<page code>", "exec"), scope)
    assert scope["result"].step_losses == result.step_losses


def test_download_is_a_hugging_face_folder_transformers_reads(page, tmp_path):
    at = page
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.text_input(key="heads_labels").set_value("bad, good").run()
    at.button(key="heads_prepare").click().run()
    assert not at.exception and at.get("download_button")
    archive = zipfile.ZipFile(io.BytesIO(at.session_state["heads_zip"][1]))
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= set(archive.namelist())
    config = json.loads(archive.read("config.json"))
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["id2label"] == {"0": "bad", "1": "good"}
    archive.extractall(tmp_path)
    import transformers as tf
    reference = tf.AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    ours = models.load_model("minilm").with_head("sequence-classification", labels=["bad", "good"]).run(TEXT)
    import torch
    with torch.no_grad():
        theirs = reference(input_ids=ours.input_ids, attention_mask=ours.attention_mask,
                           token_type_ids=ours.token_type_ids).logits
    torch.testing.assert_close(ours.logits, theirs, atol=1e-4, rtol=0)


def test_the_download_of_a_trained_head_carries_a_model_card_with_its_accuracy(page):
    at = page
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.selectbox(key="heads_trainable").set_value("head only").run()
    at.number_input(key="heads_epochs").set_value(1).run()
    at.button(key="heads_train").click().run()
    at.button(key="heads_prepare").click().run()
    assert not at.exception and at.get("download_button")
    archive = zipfile.ZipFile(io.BytesIO(at.session_state["heads_zip"][1]))
    readme = archive.read("README.md").decode()
    import yaml
    meta = yaml.safe_load(readme.split("---\n")[1])
    assert meta["pipeline_tag"] == "text-classification"
    assert meta["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"  # the page's "minilm"
    accuracy = metric(at, "Held-out accuracy")
    assert accuracy.endswith("%") and f"| held-out accuracy | {accuracy} |" in readme
    assert "labels negative, positive; trained" in readme and "| training data | sample_data/sentiment.csv |" in readme


@pytest.mark.parametrize("content, message", [
    (b"sentence,label\nGood,pos\n", "no column text"),
    (b"text,label\nGood,pos\n,neg\n", "rows 3 have an empty text or label"),
])
def test_a_bad_upload_shows_a_clear_error(page, content, message):
    at = page
    at.selectbox(key="heads_task").set_value("sequence-classification").run()
    at.file_uploader(key="heads_upload").set_value(("mine.csv", content, "text/csv")).run()
    assert not at.exception
    assert any(message in e.value for e in at.error)
    assert [h.value for h in at.subheader][-1].startswith("3")  # the rest of the page still renders


def test_language_model_heads_explain_what_can_be_trained(page):
    at = page
    assert at.selectbox(key="heads_task").value == "sequence-classification"  # a bare body starts on the classifier
    at.selectbox(key="heads_task").set_value("masked-lm").run()
    assert not at.exception and metric(at, "Status") == "untrained"
    assert any("Training here covers" in i.value for i in at.info)
    assert any(c.startswith("Put [MASK] in the text") for c in captions(at))
    assert any("architectures BertForMaskedLM)" in c for c in captions(at))
    at.selectbox(key="model_choice").set_value("smollm2").run()  # a tiny Llama with its causal-LM head
    assert at.selectbox(key="heads_task").value == "causal-lm" and metric(at, "Status") == "trained"
    expected = models.load_model("smollm2").run(TEXT).logits[0, -1].softmax(-1).topk(5)
    shown = frame(at, "next token", "probability")
    assert shown["probability"].tolist() == pytest.approx(expected.values.tolist(), abs=1e-6)
