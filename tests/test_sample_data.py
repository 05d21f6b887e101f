"""Checks on the files in sample_data/ (see sample_data/README.md)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf

DATA = Path(__file__).resolve().parents[1] / "sample_data"
BIO_TAGS = {"O"} | {f"{p}-{t}" for p in "BI" for t in ("PER", "ORG", "LOC")}


def read_csv(name: str) -> list[dict[str, str]]:
    with open(DATA / name, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


# --- sentiment.csv -------------------------------------------------------------------

@pytest.fixture(scope="module")
def sentiment() -> list[dict[str, str]]:
    return read_csv("sentiment.csv")


def test_sentiment_columns_and_size(sentiment):
    assert list(sentiment[0]) == ["text", "label", "split"]
    assert len(sentiment) >= 400


def test_sentiment_labels_and_splits(sentiment):
    assert {r["label"] for r in sentiment} == {"positive", "negative"}
    assert {r["split"] for r in sentiment} == {"train", "test"}
    for split in ("train", "test"):
        assert {r["label"] for r in sentiment if r["split"] == split} == {"positive", "negative"}


def test_sentiment_texts_nonempty_and_unique(sentiment):
    texts = [r["text"].strip() for r in sentiment]
    assert all(texts), "empty text"
    lowered = [t.lower() for t in texts]
    dups = {t for t in lowered if lowered.count(t) > 1}
    assert not dups, f"duplicate texts: {sorted(dups)[:5]}"


def test_sentiment_test_fraction(sentiment):
    frac = sum(r["split"] == "test" for r in sentiment) / len(sentiment)
    assert 0.15 <= frac <= 0.30, frac


def test_sentiment_roughly_balanced(sentiment):
    pos = sum(r["label"] == "positive" for r in sentiment) / len(sentiment)
    assert 0.4 <= pos <= 0.6, pos


# --- ner.csv -------------------------------------------------------------------------

@pytest.fixture(scope="module")
def ner() -> list[dict[str, str]]:
    return read_csv("ner.csv")


def test_ner_columns_size_and_splits(ner):
    assert list(ner[0]) == ["tokens", "tags", "split"]
    assert len(ner) >= 150
    assert {r["split"] for r in ner} == {"train", "test"}
    frac = sum(r["split"] == "test" for r in ner) / len(ner)
    assert 0.15 <= frac <= 0.30, frac


def test_ner_tags_align_with_tokens(ner):
    for r in ner:
        tokens, tags = r["tokens"].split(" "), r["tags"].split(" ")
        assert all(tokens) and all(tags), f"empty token or tag (double space?): {r['tokens']!r}"
        assert len(tokens) == len(tags), r["tokens"]


def test_ner_tags_are_valid_bio(ner):
    seen = set()
    for r in ner:
        prev = "O"
        for tag in r["tags"].split():
            assert tag in BIO_TAGS, f"bad tag {tag!r} in {r['tokens']!r}"
            if tag.startswith("I-"):
                # I-X must continue a B-X or I-X of the same type
                assert prev != "O" and prev[2:] == tag[2:], f"{tag} after {prev} in {r['tokens']!r}"
            prev = tag
            seen.add(tag)
    assert {"B-PER", "B-ORG", "B-LOC"} <= seen


# --- sentences ----------------------------------------------------------------------

def test_sentences_and_pairs():
    lines = (DATA / "sentences.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) >= 20 and all(line.strip() for line in lines)
    pairs = read_csv("sentence_pairs.csv")
    assert list(pairs[0]) == ["first", "second"]
    assert len(pairs) >= 10 and all(p["first"].strip() and p["second"].strip() for p in pairs)


# --- speech --------------------------------------------------------------------------

def test_speech_clips():
    rows = read_csv("speech/transcripts.csv")
    assert list(rows[0]) == ["file", "text"]
    assert len(rows) >= 5
    for r in rows:
        path = DATA / "speech" / r["file"]
        assert path.exists(), path
        assert r["text"].strip()
        info = sf.info(str(path))
        assert info.samplerate == 16_000, path
        assert info.channels == 1, path
        assert info.subtype == "PCM_16", path
        assert 1.0 <= info.duration <= 10.0, (path, info.duration)


def test_speech_other_formats_decode():
    files = sorted((DATA / "speech" / "formats").glob("*"))
    assert [p.suffix for p in files] == [".flac", ".mp3", ".ogg"]
    # MP3 needs libsndfile >= 1.1: the soundfile wheel bundles 1.2 here, and Debian 12's libsndfile1 is 1.2.0
    assert "MP3" in sf.available_formats(), (
        f"soundfile {sf.__version__} uses libsndfile {sf.__libsndfile_version__}, which cannot read MP3; "
        "the app accepts MP3 uploads, so install soundfile>=0.12 from its wheel (scripts/setup.sh does)")
    for path in files:
        data, sr = sf.read(str(path))
        assert sr == 16_000 and data.ndim == 1 and 1.0 <= len(data) / sr <= 10.0, path


# --- images --------------------------------------------------------------------------

def test_photos_open():
    from PIL import Image

    for name in ("china.jpg", "flower.jpg"):
        with Image.open(DATA / "images" / name) as im:
            im.load()
            assert im.format == "JPEG" and im.mode == "RGB"
            assert im.width <= 640


def test_digits_open():
    from PIL import Image

    for d in range(10):
        with Image.open(DATA / "images" / f"digit_{d}.png") as im:
            im.load()
            assert im.size == (32, 32) and im.mode == "RGB"   # vit-digits' input size
            assert im.getextrema()[0][1] > 0, "blank digit image"
    rows = read_csv("images/digits.csv")
    assert [r["file"] for r in rows] == [f"digit_{d}.png" for d in range(10)]
    assert [int(r["label"]) for r in rows] == list(range(10))
    assert all(int(r["dataset_index"]) >= 1438 for r in rows)


def test_digits_are_what_vit_digits_was_trained_on():
    """Each PNG, through the workbench's image processor, gives the tensor training gave its dataset image.

    Training (scripts/train_vit_digits.py): 8x8 digit -> uint8 round(v * 255 / 16) -> grayscale PIL
    -> RGB -> transformers' ViTImageProcessor from models/embedded/vit-digits (bilinear resize to
    32x32, rescale, normalise).
    """
    import numpy as np
    import transformers
    from PIL import Image
    from sklearn.datasets import load_digits

    from models.preprocessing.image import ImageProcessor

    folder = DATA.parent / "models" / "embedded" / "vit-digits"
    training_processor = transformers.ViTImageProcessor.from_pretrained(folder, local_files_only=True)
    processor = ImageProcessor.from_folder(folder, default_size=32)
    digits = load_digits()
    for r in read_csv("images/digits.csv"):
        idx = int(r["dataset_index"])
        assert digits.target[idx] == int(r["label"]), r
        u8 = np.clip(np.rint(digits.images[idx] * 255.0 / 16.0), 0, 255).astype(np.uint8)
        trained = training_processor(images=[Image.fromarray(u8, mode="L").convert("RGB")],
                                     return_tensors="pt")["pixel_values"]
        with Image.open(DATA / "images" / r["file"]) as im:
            sample = processor([im.convert("RGB")])
        assert sample.shape == trained.shape == (1, 3, 32, 32)
        diff = float((sample - trained).abs().max())
        assert diff <= 1e-6, f"{r['file']}: max |sample - training input| = {diff:.4f}"


def test_digits_classified_as_their_label_by_the_workbench_pipeline():
    from models import load_model, pipeline

    classify = pipeline("image-classification", load_model("vit-digits"))
    predicted = {d: classify(str(DATA / "images" / f"digit_{d}.png"))[0]["label"] for d in range(10)}
    assert predicted == {d: str(d) for d in range(10)}
