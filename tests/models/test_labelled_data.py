"""Labelled CSVs: the shipped sample sets read cleanly; bad files fail with messages that name the rows."""
from __future__ import annotations

import io
from pathlib import Path

import pytest

from models import InputError
from models.labelled_data import read_labelled_texts, read_labelled_tokens, split_off

SAMPLE = Path(__file__).resolve().parents[2] / "sample_data"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "data.csv"
    path.write_text(text)
    return path


def test_sentiment_sample_has_a_balanced_held_out_split():
    data = read_labelled_texts(SAMPLE / "sentiment.csv")
    assert len(data) >= 400 and data.label_names == ["negative", "positive"]
    train, test = data.split("train"), data.split("test")
    assert len(train) + len(test) == len(data) and len(test) >= 50
    for part in (train, test):
        share = part.labels.count("positive") / len(part)
        assert 0.4 < share < 0.6
    assert not set(train.texts) & set(test.texts)  # held out means unseen


def test_ner_sample_has_one_tag_per_word():
    data = read_labelled_tokens(SAMPLE / "ner.csv")
    assert len(data) >= 100 and "O" in data.label_names and any(t.startswith("B-") for t in data.label_names)
    assert all(len(w) == len(t) for w, t in zip(data.words, data.tags))
    assert len(data.split("test")) > 0


def test_reads_an_upload_and_defaults_the_split_to_train():
    upload = io.BytesIO(b"text,label\nGreat film,pos\nAwful film,neg\n")
    data = read_labelled_texts(upload)
    assert data.texts == ("Great film", "Awful film") and data.splits == ("train", "train")


@pytest.mark.parametrize("content, message", [
    ("sentence,label\nhi,pos\n", r"no column text; its columns are sentence, label"),
    ("text\nhi\n", "no column label"),
    ("text,label,split\nGood,pos,train\n,neg,train\nBad,,train\n", r"rows 3, 4 have an empty text or label"),
    ("text,label,split\nGood,pos,train\nBad\n", r"rows 3 have an empty"),
    ("text,label,split\nGood,pos,train\nBad,neg,tset\n", r"split 'tset'; use train, validation, test"),
    ("text,label,split\nGood,pos,test\nBad,neg,test\n", "no rows with split 'train'"),
    ("text,label,split\nGood,pos,train\nBad,pos,train\n", "single label"),
    ("text,label,split\nGood,pos,train\nOk,pos,train\nBad,neg,test\n", "'neg' never occur in the train split"),
    ("text,label\n", "no data rows"),
    ("", "empty"),
])
def test_bad_sentence_files_raise_clear_errors(tmp_path, content, message):
    with pytest.raises(InputError, match=message):
        read_labelled_texts(write(tmp_path, content))


def test_labels_outside_the_allowed_set_are_rejected(tmp_path):
    path = write(tmp_path, "text,label\nGood,positive\nBad,negative\nMeh,neutral\n")
    with pytest.raises(InputError, match="does not know: 'neutral'; expected 'negative', 'positive'"):
        read_labelled_texts(path, labels=["negative", "positive"])


def test_tags_must_match_words(tmp_path):
    path = write(tmp_path, "tokens,tags\nAnna lives here,B-PER O O\nBob ran,B-PER\n")
    with pytest.raises(InputError, match="rows 3 have a different number of words and tags"):
        read_labelled_tokens(path)


def test_missing_file_is_named(tmp_path):
    with pytest.raises(InputError, match="No file at"):
        read_labelled_texts(tmp_path / "nope.csv")


def test_split_off_is_stratified_and_reproducible():
    data = read_labelled_texts(SAMPLE / "sentiment.csv").split("train")
    rest, held = split_off(data, 0.2, seed=1)
    again_rest, again_held = split_off(data, 0.2, seed=1)
    assert held.texts == again_held.texts and rest.texts == again_rest.texts
    assert len(rest) + len(held) == len(data) and not set(rest.texts) & set(held.texts)
    for label in data.label_names:
        assert abs(held.labels.count(label) - 0.2 * data.labels.count(label)) <= 1
    assert split_off(data, 0.2, seed=2)[1].texts != held.texts
    with pytest.raises(InputError, match="between 0 and 1"):
        split_off(data, 1.5)
