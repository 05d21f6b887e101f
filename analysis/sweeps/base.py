"""What every sweep shares: a picklable description, a per-shard kernel that returns additive
partials, and a reduce that adds them up in shard order and turns the sums into metrics.

A sweep is a frozen dataclass of plain values, so it travels to a Ray actor as it is; the
kernel gets the worker's models (`WorkerModels`: loaded once, kept) and one `Shard`.
Partials are small tables of counts and sums (never per-token tensors), so adding them in
shard order gives the same numbers whichever executor computed them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import pandas as pd

from models.errors import InputError

from .data import Dataset, Shard, few_rows
from .executors import ModelFacts, WorkerModels

Partial = dict[str, pd.DataFrame]


@dataclass(frozen=True)
class Sweep:
    kind: ClassVar[str] = "sweep"
    label: ClassVar[str] = "sweep"

    def model_names(self) -> tuple[str, ...]:  # pragma: no cover - every sweep says
        raise NotImplementedError

    def describe(self) -> dict:
        """The parameters that decide the numbers (the resume key and the result's metadata)."""
        return asdict(self)

    def check(self, data: Dataset, facts: dict[str, ModelFacts]) -> None:
        """Raise InputError before anything runs if the data cannot be swept with these models."""

    def run_shard(self, models: WorkerModels, shard: Shard) -> Partial:  # pragma: no cover
        raise NotImplementedError

    def reduce(self, partials: list[Partial], data: Dataset, facts: dict[str, ModelFacts]) -> dict[str, pd.DataFrame]:
        raise NotImplementedError  # pragma: no cover


def add_up(partials: list[Partial], section: str, keys: list[str], columns: list[str] | None = None) -> pd.DataFrame:
    """Concatenate one section of every partial (in the order given) and sum it per key."""
    frames = [p[section] for p in partials if section in p and len(p[section])]
    if not frames:
        return pd.DataFrame(columns=keys + (columns or []))
    stacked = pd.concat(frames, ignore_index=True)
    return stacked.groupby(keys, sort=True, dropna=False).sum(numeric_only=True).reset_index()


def require(data: Dataset, roles: tuple[str, ...], why: str) -> None:
    missing = [role for role in roles if getattr(data.columns, role) is None]
    if missing:
        flags = " ".join(f"--{role}-column COLUMN" for role in missing)
        raise InputError(f"{why} needs a {' and a '.join(missing)} column in {data.source}; map "
                         f"{'it' if len(missing) == 1 else 'them'} ({flags}). Its columns are "
                         f"{', '.join(map(repr, data.frame.columns))}.")


def label_lookup(facts: ModelFacts) -> dict[str, str]:
    """Every spelling of a model's labels a dataset may use (the name, or the class id) -> the name."""
    lookup = {str(i): facts.labels.get(i, str(i)) for i in range(facts.n_classes or 0)}
    lookup.update({str(i): name for i, name in facts.labels.items()})
    lookup.update({name: name for name in facts.labels.values()})
    return lookup


def check_labels(data: Dataset, facts: ModelFacts) -> None:
    """Every gold label is one the model knows (by name or class id); else name the rows and the column."""
    lookup = label_lookup(facts)
    column = data.columns.label
    values = data.frame[column].astype(str)
    bad = [i for i, v in enumerate(values) if v not in lookup]
    if bad:
        unknown = sorted({values.iloc[i] for i in bad})
        known = (", ".join(repr(n) for n in facts.labels.values()) if facts.labels else
                 f"class ids 0..{(facts.n_classes or 1) - 1} (it has no label names)")
        raise InputError(f"{data.source}, column {column!r}: {few_rows(bad, data.format)} "
                         f"{'has a label' if len(bad) == 1 else 'have labels'} {', '.join(map(repr, unknown[:5]))} "
                         f"that {facts.name} does not know; its labels are {known}.")
