"""Reading datasets: every format gives the same rows; every bad input names the file, the column and the rows."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from analysis.sweeps.data import ColumnMap, length_bucket, read_dataset, read_uploaded, slice_values
from models.errors import InputError

ROOT = Path(__file__).resolve().parents[3]
SENTIMENT = ROOT / "sample_data" / "sentiment.csv"
DIGITS = ROOT / "sample_data" / "images" / "digits.csv"
SPEECH = ROOT / "sample_data" / "speech" / "transcripts.csv"
MAP = ColumnMap(text="text", label="label")


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(SENTIMENT, dtype=str, keep_default_na=False).head(25)


def _same(data, rows) -> None:
    assert list(data.frame["text"]) == list(rows["text"])
    assert list(data.frame["label"]) == list(rows["label"])
    assert list(data.frame["split"]) == list(rows["split"])


def test_every_format_reads_the_same_rows(tmp_path, rows):
    rows.to_csv(tmp_path / "d.csv", index=False)
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows.to_dict("records")) + "\n")
    rows.to_parquet(tmp_path / "d.parquet")
    import datasets
    datasets.Dataset.from_pandas(rows).save_to_disk(str(tmp_path / "hf"))
    datasets.DatasetDict({"train": datasets.Dataset.from_pandas(rows.head(20)),
                          "test": datasets.Dataset.from_pandas(rows.tail(5))}).save_to_disk(str(tmp_path / "hf_dict"))
    for name in ("d.csv", "d.jsonl", "d.parquet", "hf"):
        data = read_dataset(tmp_path / name, MAP)
        _same(data, rows)
        assert data.columns == MAP
    assert read_dataset(tmp_path / "d.csv", MAP).fingerprint() == read_dataset(tmp_path / "d.parquet", MAP).fingerprint()
    assert list(read_dataset(tmp_path / "hf_dict", MAP, split="test").frame["text"]) == list(rows.tail(5)["text"])
    with pytest.raises(InputError, match="has splits train, test; choose one"):
        read_dataset(tmp_path / "hf_dict", MAP)
    uploaded = read_uploaded((tmp_path / "d.jsonl").read_bytes(), "d.jsonl", MAP)
    _same(uploaded, rows)


def test_plain_text_and_guessed_columns():
    data = read_dataset(ROOT / "sample_data" / "sentences.txt")
    assert data.columns == ColumnMap(text="text") and len(data) == 30
    assert read_dataset(SENTIMENT).columns == MAP
    digits = read_dataset(DIGITS)
    assert digits.columns == ColumnMap(label="label", image="file")
    assert Path(digits.frame["file"][0]).is_absolute() and Path(digits.frame["file"][0]).is_file()
    speech = read_dataset(SPEECH)
    assert speech.columns == ColumnMap(reference="text", audio="file")


def test_missing_column_is_named_with_the_columns_there():
    with pytest.raises(InputError, match=r"sentiment.csv has no column 'review' \(as text\); its columns are "
                                         r"'text', 'label', 'split'"):
        read_dataset(SENTIMENT, ColumnMap(text="review", label="label"))


def test_empty_cells_name_the_rows_and_the_column(tmp_path, rows):
    rows = rows.copy()
    rows.loc[3, "label"] = ""
    rows.loc[7, "label"] = "  "
    rows.to_csv(tmp_path / "gaps.csv", index=False)
    with pytest.raises(InputError, match=r"gaps.csv, column 'label' \(label\): row 4 \(line 5\), row 8 \(line 9\) "
                                         r"are empty"):
        read_dataset(tmp_path / "gaps.csv", MAP)
    (tmp_path / "bad.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b", label: 1}\n')
    with pytest.raises(InputError, match=r"bad.jsonl, line 2: not valid JSON"):
        read_dataset(tmp_path / "bad.jsonl", MAP)
    (tmp_path / "num.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": 5, "label": "y"}\n')
    with pytest.raises(InputError, match=r"num.jsonl, column 'text' \(text\): row 2 \(line 2\) holds int, not text"):
        read_dataset(tmp_path / "num.jsonl", MAP)


def test_an_image_path_that_does_not_exist(tmp_path):
    frame = pd.read_csv(DIGITS, dtype=str)
    frame.loc[2, "file"] = "digit_missing.png"
    frame.to_csv(tmp_path / "digits.csv", index=False)
    for name in ("digit_0.png", "digit_1.png"):  # the others are missing too, relative to this folder
        (tmp_path / name).write_bytes((DIGITS.parent / name).read_bytes())
    with pytest.raises(InputError) as error:
        read_dataset(tmp_path / "digits.csv", ColumnMap(image="file", label="label"))
    message = str(error.value)
    assert "digits.csv, column 'file' (image path): row 3 (line 4)" in message
    assert "no file at" in message and "digit_missing.png" in message and "and 7 more missing" in message


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "data.xlsx").write_bytes(b"xx")
    with pytest.raises(InputError, match="cannot tell the format"):
        read_dataset(tmp_path / "data.xlsx")
    with pytest.raises(InputError, match="No dataset at"):
        read_dataset(tmp_path / "nothing.csv")
    (tmp_path / "broken.parquet").write_bytes(b"not parquet")
    with pytest.raises(InputError, match="could not be read as Parquet"):
        read_dataset(tmp_path / "broken.parquet", MAP)


def test_slices_by_label_length_or_column(rows):
    data = read_dataset(SENTIMENT, MAP)
    assert list(slice_values(data.frame, data.columns, "label")) == list(data.frame["label"])
    lengths = slice_values(data.frame, data.columns, "length")
    assert list(lengths[:3]) == [length_bucket(len(t.split())) for t in data.frame["text"][:3]]
    assert [length_bucket(n) for n in (1, 5, 6, 10, 11, 20, 21)] == [
        "1-5 words", "1-5 words", "6-10 words", "6-10 words", "11-20 words", "11-20 words", "21+ words"]
    assert set(slice_values(data.frame, data.columns, "split")) == {"train", "test"}
    with pytest.raises(InputError, match="Cannot slice by 'colour'"):
        slice_values(data.frame, data.columns, "colour")
    shards = data.shards(100)
    assert [len(s) for s in shards] == [100, 100, 100, 100, 63] and shards[4].start == 400
