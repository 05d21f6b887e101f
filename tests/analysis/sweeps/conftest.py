"""Tiny random checkpoints for the sweep tests, made once per test session, and a small slice of the sample set.

Sweeps load models by folder (as a Ray worker does), so the folders are real checkpoints on disk.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.tiny_models import make_checkpoint

ROOT = Path(__file__).resolve().parents[3]
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"
SENTIMENT_LABELS = dict(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})


@pytest.fixture(scope="session")
def sweep_models(tmp_path_factory) -> dict[str, str]:
    """{"classifier", "classifier_b", "lm"}: folders of a tiny BERT classifier (two seeds) and a tiny Llama."""
    folders = {}
    for key, kind, seed, extra in [("classifier", "bert-cls", 0, SENTIMENT_LABELS),
                                   ("classifier_b", "bert-cls", 1, SENTIMENT_LABELS),
                                   ("lm", "llama", 0, {})]:
        folder = tmp_path_factory.mktemp(f"sweep-{key}")
        make_checkpoint(kind, folder, seed=seed, **extra)
        folders[key] = str(folder)
    return folders


@pytest.fixture(scope="session")
def small_sentiment(tmp_path_factory) -> Path:
    """60 rows of sample_data/sentiment.csv, lower-cased so the tiny word vocabulary sees some words."""
    frame = pd.read_csv(SENTIMENT, dtype=str, keep_default_na=False).head(60)
    frame["text"] = frame["text"].str.lower()
    path = tmp_path_factory.mktemp("sweep-data") / "sentiment60.csv"
    frame.to_csv(path, index=False)
    return path
