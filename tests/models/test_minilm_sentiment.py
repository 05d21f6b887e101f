"""The embedded `minilm-sentiment`: small on disk, loads offline, scores >= 85% held out, matches transformers."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from models import load_model
from models.embedded import EMBEDDED, PROJECT_ROOT
from models.labelled_data import read_labelled_texts
from models.task_heads import head_is_trained
from models.training import evaluate

DELTA = PROJECT_ROOT / "models" / "embedded" / "minilm-sentiment"
TEXTS = ["The staff were wonderful and the room was spotless.", "Cold food, rude waiter, never again.",
         "It was fine."]


def test_the_committed_delta_is_small_and_carries_its_card():
    size = sum(p.stat().st_size for p in DELTA.iterdir())
    assert size < 5_000_000  # vs ~90 MB for the whole fine-tuned model
    card = json.loads((DELTA / "base.json").read_text())["card"]
    assert card["held_out_accuracy"] >= 0.85
    assert f"{card['held_out_accuracy']:.1%}" in (DELTA / "README.md").read_text()


@pytest.mark.slow
def test_loads_offline_and_reaches_the_held_out_accuracy():
    model = load_model("minilm-sentiment")
    assert model.task == "sequence-classification" and model.labels == {0: "negative", 1: "positive"}
    assert head_is_trained(model) is True
    test = read_labelled_texts(Path(PROJECT_ROOT) / "sample_data" / "sentiment.csv").split("test")
    scored = evaluate(model, test)
    assert scored.accuracy >= 0.85
    probs = model.run(TEXTS[:2]).logits.softmax(-1)
    assert probs[0, 1] > 0.5 > probs[1, 1]  # plainly positive, plainly negative


@pytest.mark.slow
def test_transformers_loads_the_same_folder_with_the_same_logits():
    import transformers as tf
    folder = EMBEDDED["minilm-sentiment"]()
    reference = tf.AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tokenizer = tf.AutoTokenizer.from_pretrained(folder)
    assert reference.config.id2label == {0: "negative", 1: "positive"}
    model = load_model("minilm-sentiment")
    trace = model.run(TEXTS)
    encoded = tokenizer(TEXTS, padding=True, return_tensors="pt")
    assert torch.equal(encoded["input_ids"], trace.input_ids)
    with torch.no_grad():
        theirs = reference(**encoded).logits
    torch.testing.assert_close(trace.logits, theirs, atol=1e-4, rtol=0)
