"""Attribution on the embedded MiniLM: completeness at full size, and sentiment words on the trained classifier."""
from __future__ import annotations

import pytest
import torch

from analysis.attribution import attribute_text, rank_correlation
from models import load_model

pytestmark = pytest.mark.slow

POSITIVE_TEXT = "What a wonderful, delightful film. I loved it."
SENTIMENT_WORDS = {"wonderful", "delightful", "loved"}


def _word_scores(report, key):
    """Scores summed per word (WordPiece pieces joined), special tokens left out."""
    words: list[tuple[str, float]] = []
    for token, special, score in zip(report.units, report.special, report.results[key].scores.tolist()):
        if special:
            continue
        if token.startswith("##") and words:
            words[-1] = (words[-1][0] + token[2:], words[-1][1] + score)
        else:
            words.append((token, score))
    return words


def test_integrated_gradients_are_complete_on_minilm_with_a_classification_head():
    model = load_model("minilm", task="sequence-classification")  # untrained head: any decision will do
    torch.manual_seed(0)
    report = attribute_text(model, "The cat sat on the mat and looked out of the window.",
                            methods=["integrated_gradients", "occlusion"], target=1)
    ig = report.results["integrated_gradients"]
    assert ig.converged and abs(ig.convergence_delta) <= 0.05 * abs(ig.output_difference) + 1e-5
    assert float(ig.scores.sum()) == pytest.approx(ig.output_difference, abs=0.05 * abs(ig.output_difference) + 1e-5)
    assert rank_correlation(report).shape == (2, 2)


def test_a_clearly_positive_sentence_puts_positive_mass_on_its_sentiment_words():
    model = load_model("minilm-sentiment")
    positive = next(i for i, label in model.labels.items() if label.lower().startswith("pos"))
    report = attribute_text(model, POSITIVE_TEXT, methods=["integrated_gradients", "occlusion"], target=positive)
    assert report.target.probability > 0.5  # the model does find it positive
    for key in ("integrated_gradients", "occlusion"):
        words = _word_scores(report, key)
        sentiment = [s for w, s in words if w in SENTIMENT_WORDS]
        others = [s for w, s in words if w not in SENTIMENT_WORDS and w.isalpha()]
        assert len(sentiment) == len(SENTIMENT_WORDS)
        assert sum(sentiment) > 0, f"{key}: {words}"
        assert sum(sentiment) / len(sentiment) > sum(others) / len(others), f"{key}: {words}"
