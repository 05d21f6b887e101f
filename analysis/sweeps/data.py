"""Datasets for sweeps: CSV, JSONL, Parquet, plain text, or a Hugging Face `datasets` folder saved to disk.

A `ColumnMap` says which column plays which role (text, pair, label, reference transcript,
image path, audio path); every other column is kept, so a sweep can slice by it. Every problem
is reported with the file, the column and the rows concerned, before any model runs:

    data = read_dataset("sample_data/sentiment.csv", ColumnMap(text="text", label="label"))
    data.shards(64)     # contiguous, numbered pieces a sweep runs one at a time (and resumes by)

Rows are numbered from 1 in messages; for CSV the message also gives the line of the file
(the header is line 1), as a spreadsheet shows it.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import IO, Iterable, Union

import pandas as pd

from models.errors import InputError

DataSource = Union[str, Path, IO[bytes], IO[str]]
ROLES = ("text", "pair", "label", "reference", "image", "audio")
FORMATS = ("csv", "jsonl", "parquet", "txt", "hf")
SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
            ".parquet": "parquet", ".pq": "parquet", ".txt": "txt"}
LENGTH_BUCKETS = (5, 10, 20)  # word counts where the "length" slice starts a new bucket
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")
AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")


@dataclass(frozen=True)
class ColumnMap:
    """Which column of the file holds each role; None = the dataset has no such column."""
    text: str | None = None        # the input sentence (or the first of a pair)
    pair: str | None = None        # the second sentence of a pair (question answering, entailment)
    label: str | None = None       # the gold class of a classifier
    reference: str | None = None   # the expected output: a transcript (speech) or a target text (text-to-text)
    image: str | None = None       # a path to an image file, relative to the data file's folder
    audio: str | None = None       # a path to an audio file, relative to the data file's folder

    def mapped(self) -> dict[str, str]:
        """{role: column} of the roles that have a column."""
        return {role: column for role, column in asdict(self).items() if column}

    @classmethod
    def guess(cls, frame: pd.DataFrame) -> "ColumnMap":
        """A mapping from the usual column names (text, label, file, ...), for a first look at a file.

        A column of .png/.jpg paths is the image, of .wav/.flac/.mp3/.ogg paths the audio; next to
        audio, a text column is the reference transcript."""
        names = {str(c).lower(): str(c) for c in frame.columns}
        pick = lambda *options: next((names[o] for o in options if o in names), None)
        image = pick("image", "image_path", "image_file")
        audio = pick("audio", "audio_path", "audio_file")
        for column in frame.columns:
            first = str(frame[column].iloc[0]).lower() if len(frame) else ""
            if image is None and first.endswith(IMAGE_SUFFIXES):
                image = str(column)
            if audio is None and first.endswith(AUDIO_SUFFIXES):
                audio = str(column)
        text = pick("text", "sentence", "first", "question", "input", "prompt")
        reference = pick("reference", "transcript", "target", "answer", "completion")
        if audio and reference is None and text:
            text, reference = None, text
        return cls(text=None if (image or audio) and text is None else text,
                   pair=pick("pair", "second", "context", "text_pair"),
                   label=pick("label", "labels", "class"), reference=reference, image=image, audio=audio)


@dataclass(frozen=True)
class Shard:
    """Rows start..start + len - 1 of a dataset: the unit a sweep computes, stores and resumes by."""
    index: int
    start: int
    frame: pd.DataFrame            # the rows, every column as read (paths made absolute)
    columns: ColumnMap

    def __len__(self) -> int:
        return len(self.frame)

    def values(self, role: str) -> list:
        """The values of a role's column, in row order (an error if the dataset does not map it)."""
        column = getattr(self.columns, role)
        if column is None:
            raise InputError(f"This sweep needs a {role} column; map one (e.g. --{role}-column).")
        return self.frame[column].tolist()

    def has(self, role: str) -> bool:
        return getattr(self.columns, role) is not None


@dataclass(frozen=True)
class Dataset:
    frame: pd.DataFrame
    columns: ColumnMap
    source: str = ""               # the file or folder name, for messages
    format: str = "csv"

    def __len__(self) -> int:
        return len(self.frame)

    def head(self, rows: int) -> "Dataset":
        """The first `rows` rows (at least one), same mapping."""
        return replace(self, frame=self.frame.head(max(1, rows)).reset_index(drop=True))

    def row_name(self, index: int) -> str:
        return row_name(index, self.format)

    def shards(self, size: int) -> list[Shard]:
        """The rows cut into numbered pieces of `size` (the last may be shorter)."""
        if size < 1:
            raise InputError(f"A shard holds at least one row; got shard size {size}.")
        return [Shard(i, start, self.frame.iloc[start:start + size].reset_index(drop=True), self.columns)
                for i, start in enumerate(range(0, len(self.frame), size))]

    def fingerprint(self) -> str:
        """A hash of the content and the mapping: a resumed sweep checks it is the same data."""
        digest = hashlib.sha256(json.dumps(self.columns.mapped(), sort_keys=True).encode())
        digest.update(json.dumps(list(map(str, self.frame.columns))).encode())
        digest.update(pd.util.hash_pandas_object(self.frame.astype(str), index=True).values.tobytes())
        return digest.hexdigest()[:16]

    def slice_values(self, spec: str, buckets: tuple[int, ...] = LENGTH_BUCKETS) -> pd.Series:
        return slice_values(self.frame, self.columns, spec, buckets, self.source)


def row_name(index: int, fmt: str) -> str:
    """How a message names row `index` (0-based): CSV rows also give their line in the file."""
    if fmt == "csv":
        return f"row {index + 1} (line {index + 2})"
    if fmt in ("jsonl", "txt"):
        return f"row {index + 1} (line {index + 1})"
    return f"row {index + 1}"


def few_rows(indices: list[int], fmt: str, limit: int = 5) -> str:
    shown = ", ".join(row_name(i, fmt) for i in indices[:limit])
    return shown + (f" and {len(indices) - limit} more" if len(indices) > limit else "")


# ---------------------------------------------------------------- reading

def detect_format(source: DataSource) -> str:
    if not isinstance(source, (str, Path)):
        name = getattr(source, "name", "")
        return SUFFIXES.get(Path(str(name)).suffix.lower(), "csv")
    path = Path(source)
    if path.is_dir():
        return "hf"
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise InputError(f"{path.name}: cannot tell the format from the suffix {suffix or '(none)'}; "
                         f"use .csv, .jsonl, .parquet, .txt or a folder saved with datasets' save_to_disk.")
    return SUFFIXES[suffix]


def read_dataset(source: DataSource, columns: ColumnMap | None = None, format: str | None = None,
                 split: str | None = None, base_dir: str | Path | None = None, name: str | None = None) -> Dataset:
    """Read a dataset and check its mapped columns; `columns=None` guesses them from the column names.

    `split` picks one split of a saved `DatasetDict` (the only one by default). Image and audio
    paths are resolved against `base_dir` (default: the data file's folder) and must exist.
    """
    frame, fmt, label = read_table(source, format, split, name)
    columns = columns or ColumnMap.guess(frame)
    if not columns.mapped():
        raise InputError(f"{label}: no column is mapped to a role; its columns are {', '.join(frame.columns)}. "
                         "Say which holds the text (or image, audio) and which the label or reference.")
    missing = {role: column for role, column in columns.mapped().items() if column not in frame.columns}
    if missing:
        said = ", ".join(f"{column!r} (as {role})" for role, column in missing.items())
        raise InputError(f"{label} has no column {said}; its columns are {', '.join(map(repr, frame.columns))}.")
    if base_dir is None:
        if isinstance(source, (str, Path)):
            base_dir = Path(source) if fmt == "hf" else Path(source).parent
        else:
            base_dir = Path.cwd()
    frame = _check_cells(frame, columns, label, fmt, Path(base_dir))
    return Dataset(frame=frame.reset_index(drop=True), columns=columns, source=label, format=fmt)


def read_table(source: DataSource, format: str | None = None, split: str | None = None,
               name: str | None = None) -> tuple[pd.DataFrame, str, str]:
    """(every row and column as read, the format, the name messages use); no column is checked yet."""
    fmt = format or detect_format(source)
    if fmt not in FORMATS:
        raise InputError(f"Unknown dataset format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    label = name or (Path(source).name if isinstance(source, (str, Path)) else
                     Path(str(getattr(source, "name", "") or "the uploaded file")).name)
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise InputError(f"No dataset at {source}.")
    if hasattr(source, "seek"):
        source.seek(0)
    frame = READERS[fmt](source, label, split)
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise InputError(f"{label} has no rows.")
    return frame, fmt, label


def _read_csv(source: DataSource, label: str, split: str | None) -> pd.DataFrame:
    sep = "\t" if isinstance(source, (str, Path)) and str(source).lower().endswith(".tsv") else ","
    try:
        return pd.read_csv(source, dtype=str, keep_default_na=False, sep=sep).fillna("")
    except pd.errors.EmptyDataError:
        raise InputError(f"{label} is empty: expected a header row and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{label} could not be read as CSV: {error}".rstrip(".") + ".") from None


def _read_jsonl(source: DataSource, label: str, split: str | None) -> pd.DataFrame:
    text = _text_of(source, label)
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{label}, line {number}: not valid JSON ({error.msg} at column {error.colno}).") from None
        if not isinstance(row, dict):
            raise InputError(f"{label}, line {number}: expected a JSON object {{\"column\": value, ...}}, "
                             f"got {type(row).__name__}.")
        rows.append(row)
    return pd.DataFrame(rows)


def _read_parquet(source: DataSource, label: str, split: str | None) -> pd.DataFrame:
    try:
        return pd.read_parquet(source)
    except Exception as error:  # pyarrow raises several types for a file that is not Parquet
        raise InputError(f"{label} could not be read as Parquet: {error}".rstrip(".") + ".") from None


def _read_txt(source: DataSource, label: str, split: str | None) -> pd.DataFrame:
    lines = [line.strip() for line in _text_of(source, label).splitlines()]
    return pd.DataFrame({"text": [line for line in lines if line]})


def _read_hf(source: DataSource, label: str, split: str | None) -> pd.DataFrame:
    """A folder written by `datasets`' save_to_disk (a Dataset, or a DatasetDict with one folder per split)."""
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")  # reading from disk needs no network; never try it
    try:
        import datasets
    except ImportError:  # pragma: no cover - a declared dependency
        raise InputError("Reading a saved Hugging Face dataset needs the `datasets` package: pip install datasets.") from None
    try:
        loaded = datasets.load_from_disk(str(source))
    except FileNotFoundError as error:
        raise InputError(f"{label} is not a folder saved with datasets' save_to_disk: {error}") from None
    if isinstance(loaded, datasets.DatasetDict):
        names = list(loaded)
        if split is None and len(names) == 1:
            split = names[0]
        if split not in loaded:
            raise InputError(f"{label} has splits {', '.join(names)}; choose one"
                             + (f" (there is no {split!r})." if split else "."))
        loaded = loaded[split]
    return loaded.to_pandas()


READERS = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet, "txt": _read_txt, "hf": _read_hf}


def _text_of(source: DataSource, label: str) -> str:
    try:
        if isinstance(source, (str, Path)):
            return Path(source).read_text(encoding="utf-8")
        raw = source.read()
        return raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError:
        raise InputError(f"{label} is not UTF-8 text.") from None


def _check_cells(frame: pd.DataFrame, columns: ColumnMap, label: str, fmt: str, base_dir: Path) -> pd.DataFrame:
    frame = frame.copy()
    for role, column in columns.mapped().items():
        values = frame[column]
        empty = [i for i, v in enumerate(values) if _is_empty(v)]
        if empty:
            raise InputError(f"{label}, column {column!r} ({role}): {few_rows(empty, fmt)} "
                             f"{'is' if len(empty) == 1 else 'are'} empty; fill them in or delete those rows.")
        if role in ("text", "pair", "reference"):
            wrong = [i for i, v in enumerate(values) if not isinstance(v, str)]
            if wrong:
                kind = type(values.iloc[wrong[0]]).__name__
                raise InputError(f"{label}, column {column!r} ({role}): {few_rows(wrong, fmt)} "
                                 f"{'holds' if len(wrong) == 1 else 'hold'} {kind}, not text.")
        if role == "label":
            frame[column] = [str(v).strip() for v in values]
        if role in ("image", "audio"):
            resolved = [str(v) if Path(str(v)).is_absolute() else str((base_dir / str(v)).resolve()) for v in values]
            gone = [i for i, path in enumerate(resolved) if not Path(path).is_file()]
            if gone:
                raise InputError(f"{label}, column {column!r} ({role} path): {few_rows(gone, fmt)}: no file at "
                                 f"{resolved[gone[0]]}" + (f" (and {len(gone) - 1} more missing)" if len(gone) > 1 else "")
                                 + f". Paths are read relative to {base_dir}.")
            frame[column] = resolved
    return frame


def _is_empty(value) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and value != value:  # NaN
        return True
    return isinstance(value, str) and not value.strip()


# ---------------------------------------------------------------- slices

def slice_values(frame: pd.DataFrame, columns: ColumnMap, spec: str, buckets: tuple[int, ...] = LENGTH_BUCKETS,
                 source: str = "the dataset") -> pd.Series:
    """The group each row falls in for slice `spec`: "label", "length" (word-count buckets), or a column name."""
    if spec == "label":
        if columns.label is None:
            raise InputError("Slicing by label needs a label column.")
        return frame[columns.label].astype(str)
    if spec == "length":
        column = columns.text or columns.reference
        if column is None:
            raise InputError("Slicing by length needs a text (or reference) column.")
        return frame[column].astype(str).map(lambda t: length_bucket(len(t.split()), buckets))
    if spec not in frame.columns:
        raise InputError(f"Cannot slice by {spec!r}: {source} has no such column; its columns are "
                         f"{', '.join(map(repr, frame.columns))} (or use 'label' or 'length').")
    return frame[spec].astype(str)


def length_bucket(words: int, buckets: tuple[int, ...] = LENGTH_BUCKETS) -> str:
    """'1-5 words', '6-10 words', ..., '21+ words' for the default buckets."""
    low = 1
    for high in buckets:
        if words <= high:
            return f"{low}-{high} words"
        low = high + 1
    return f"{low}+ words"


def read_uploaded(data: bytes, filename: str, columns: ColumnMap | None = None) -> Dataset:
    """A dataset from an uploaded file's bytes (the app's file uploader); paths resolve from the working folder."""
    buffer = io.BytesIO(data)
    buffer.name = filename
    return read_dataset(buffer, columns, format=detect_format(buffer), name=filename, base_dir=Path.cwd())
