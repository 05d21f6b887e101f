"""Labelled CSV data for training task heads: sentences with a label, or words with a tag each.

Two layouts, one row per example:
  text,label,split                       sequence classification (e.g. sample_data/sentiment.csv)
  tokens,tags,split                      token classification: space-separated words and as many tags
                                         (e.g. sample_data/ner.csv, BIO tags)
`split` is optional (every row is then "train") and takes train, validation or test. Every
problem is reported at once with the rows concerned, and nothing is returned half-read.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Union

import pandas as pd
import torch

from .errors import InputError

CsvSource = Union[str, Path, IO[str], IO[bytes]]
SPLITS = ("train", "validation", "test")


class _Splits:
    """What both labelled sets share: rows carry a split name ("train", "validation", "test")."""
    splits: tuple[str, ...]

    def split(self, name: str):
        return self.subset(i for i, s in enumerate(self.splits) if s == name)

    def subset(self, rows: Iterable[int]):  # pragma: no cover - each set defines it
        raise NotImplementedError


@dataclass(frozen=True)
class LabelledTexts(_Splits):
    """Sentences and one label each (sequence classification)."""
    texts: tuple[str, ...]
    labels: tuple[str, ...]
    splits: tuple[str, ...]
    source: str = ""
    task: str = field(default="sequence-classification", init=False)

    def __len__(self) -> int:
        return len(self.texts)

    @property
    def label_names(self) -> list[str]:
        return sorted(set(self.labels))

    def subset(self, rows: Iterable[int]) -> "LabelledTexts":
        rows = list(rows)
        return LabelledTexts(tuple(self.texts[i] for i in rows), tuple(self.labels[i] for i in rows),
                             tuple(self.splits[i] for i in rows), self.source)


@dataclass(frozen=True)
class LabelledTokens(_Splits):
    """Pre-split words and one tag per word (token classification)."""
    words: tuple[tuple[str, ...], ...]
    tags: tuple[tuple[str, ...], ...]
    splits: tuple[str, ...]
    source: str = ""
    task: str = field(default="token-classification", init=False)

    def __len__(self) -> int:
        return len(self.words)

    @property
    def label_names(self) -> list[str]:
        return sorted({t for row in self.tags for t in row})

    @property
    def labels(self) -> tuple[str, ...]:
        """Every tag in reading order (what label checks look at)."""
        return tuple(t for row in self.tags for t in row)

    def subset(self, rows: Iterable[int]) -> "LabelledTokens":
        rows = list(rows)
        return LabelledTokens(tuple(self.words[i] for i in rows), tuple(self.tags[i] for i in rows),
                              tuple(self.splits[i] for i in rows), self.source)


LabelledData = Union[LabelledTexts, LabelledTokens]


def read_labelled_texts(source: CsvSource, text_column: str = "text", label_column: str = "label",
                        split_column: str = "split", labels: Iterable[str] | None = None) -> LabelledTexts:
    """Read a text,label[,split] CSV; `labels` restricts the allowed label names (e.g. a head's labels)."""
    frame, name = _read_csv(source, [text_column, label_column], split_column)
    texts, values = frame[text_column].str.strip(), frame[label_column].str.strip()
    _no_empty_cells(frame, {text_column: texts, label_column: values}, name)
    splits = _splits(frame, split_column, name)
    data = LabelledTexts(tuple(texts), tuple(values), splits, name)
    _check_labels(data, labels, name)
    return data


def read_labelled_tokens(source: CsvSource, tokens_column: str = "tokens", tags_column: str = "tags",
                         split_column: str = "split", labels: Iterable[str] | None = None) -> LabelledTokens:
    """Read a tokens,tags[,split] CSV of space-separated words and tags, one tag per word."""
    frame, name = _read_csv(source, [tokens_column, tags_column], split_column)
    words, tags = frame[tokens_column].str.split(), frame[tags_column].str.split()
    _no_empty_cells(frame, {tokens_column: frame[tokens_column].str.strip(),
                            tags_column: frame[tags_column].str.strip()}, name)
    mismatched = [_row(i) for i, (w, t) in enumerate(zip(words, tags)) if len(w) != len(t)]
    if mismatched:
        raise InputError(f"{name}: rows {_few(mismatched)} have a different number of words and tags; "
                         "give exactly one tag per space-separated word.")
    splits = _splits(frame, split_column, name)
    data = LabelledTokens(tuple(tuple(w) for w in words), tuple(tuple(t) for t in tags), splits, name)
    _check_labels(data, labels, name)
    return data


def split_off(data: LabelledData, fraction: float, seed: int = 0, name: str = "validation") -> tuple[LabelledData, LabelledData]:
    """Hold out `fraction` of `data` (stratified by label for sentences), reproducibly: (rest, held out)."""
    if not 0 < fraction < 1:
        raise InputError(f"The fraction to hold out must lie strictly between 0 and 1; got {fraction}.")
    generator = torch.Generator().manual_seed(seed)
    groups: dict[str, list[int]] = {}
    for i in range(len(data)):
        key = data.labels[i] if isinstance(data, LabelledTexts) else ""
        groups.setdefault(key, []).append(i)
    held: list[int] = []
    for key in sorted(groups):
        rows = groups[key]
        order = torch.randperm(len(rows), generator=generator).tolist()
        held += [rows[j] for j in order[: max(1, round(fraction * len(rows)))]]
    held_set = set(held)
    rest = [i for i in range(len(data)) if i not in held_set]
    if not rest:
        raise InputError(f"Holding out {fraction:.0%} of {len(data)} examples leaves none to train on.")
    return data.subset(rest), data.subset(sorted(held))


# ---------------------------------------------------------------------------- checks

def _read_csv(source: CsvSource, required: list[str], split_column: str) -> tuple[pd.DataFrame, str]:
    name = Path(source).name if isinstance(source, (str, Path)) else getattr(source, "name", "the CSV file")
    if isinstance(source, (str, Path)) and not Path(source).exists():
        raise InputError(f"No file at {source}.")
    try:
        if isinstance(source, (bytes, bytearray)):
            source = io.BytesIO(source)
        frame = pd.read_csv(source, dtype=str, keep_default_na=False, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise InputError(f"{name} is empty: expected a header row ({', '.join(required)}) and data rows.") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as error:
        raise InputError(f"{name} could not be read as CSV: {error}".rstrip(".") + ".") from None
    frame = frame.fillna("")  # short rows leave NaN even with keep_default_na=False
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in required if c not in frame.columns]
    if missing:
        wanted = ", ".join(required) + f" (and optionally {split_column})"
        raise InputError(f"{name} has no column{'s' * (len(missing) > 1)} {', '.join(missing)}; its columns are "
                         f"{', '.join(frame.columns) or 'none'}. Expected {wanted}.")
    if frame.empty:
        raise InputError(f"{name} has a header but no data rows.")
    return frame, name


def _row(index: int) -> int:
    return index + 2  # as a spreadsheet numbers them: the header is row 1


def _few(rows: list[int], limit: int = 8) -> str:
    shown = ", ".join(map(str, rows[:limit]))
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _no_empty_cells(frame: pd.DataFrame, cells: dict[str, pd.Series], name: str) -> None:
    empty = sorted({_row(i) for column in cells.values() for i, v in enumerate(column) if not v})
    if empty:
        raise InputError(f"{name}: rows {_few(empty)} have an empty {' or '.join(cells)} (counting the header as "
                         "row 1); fill them in or delete them.")


def _splits(frame: pd.DataFrame, split_column: str, name: str) -> tuple[str, ...]:
    if split_column not in frame.columns:
        return ("train",) * len(frame)
    splits = frame[split_column].str.strip().str.lower()
    unknown = [_row(i) for i, s in enumerate(splits) if s not in SPLITS]
    if unknown:
        values = sorted({frame[split_column].iloc[i - 2] for i in unknown})
        raise InputError(f"{name}: rows {_few(unknown)} have split {', '.join(map(repr, values))}; "
                         f"use {', '.join(SPLITS)}.")
    if "train" not in set(splits):
        raise InputError(f"{name} has no rows with split 'train' to learn from.")
    return tuple(splits)


def _check_labels(data: LabelledData, allowed: Iterable[str] | None, name: str) -> None:
    names = data.label_names
    if allowed is not None:
        allowed = list(allowed)
        unknown = [label for label in names if label not in allowed]
        if unknown:
            raise InputError(f"{name} has labels the model does not know: {', '.join(map(repr, unknown))}; "
                             f"expected {', '.join(map(repr, allowed))}.")
    if len(names) < 2:
        raise InputError(f"{name} has a single label ({', '.join(names)}); a classifier needs at least two.")
    train = set(data.split("train").label_names)
    unseen = [label for label in names if label not in train]
    if unseen:
        raise InputError(f"{name}: labels {', '.join(map(repr, unseen))} never occur in the train split, "
                         "so a model cannot learn them.")
