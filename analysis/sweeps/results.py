"""What a sweep returns and writes: named tables of aggregates ("sections") in one Parquet file.

One file per result: the sections are stacked in one table with a `section` column, and the
Parquet metadata (key `workbench`) records each section's columns and dtypes and what was run
(kind, models, data, columns, parameters), so `read_result` gives back exactly what was written.
Aggregates only: a table per head, per model, per slice or per token, never per-example tensors.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from models.errors import InputError

META_KEY = b"workbench"
FORMAT_VERSION = 1


@dataclass
class SweepResult:
    kind: str                                   # "evaluate", "head-importance", "pruning-curve", "attribution"
    sections: dict[str, pd.DataFrame]           # name -> table of aggregates
    meta: dict = field(default_factory=dict)    # models, data, columns, params, n_examples, shards, executor

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.sections:
            raise KeyError(f"this {self.kind} result has no section {name!r}; it has {', '.join(self.sections)}")
        return self.sections[name]

    def to_parquet(self, path: str | Path) -> Path:
        """Write atomically: a crash or an error never leaves a half-written file where a good one was."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        write_sections(temporary, self.sections, {"kind": self.kind, **self.meta})
        os.replace(temporary, path)
        return path


def write_sections(path: str | Path, sections: dict[str, pd.DataFrame], meta: dict) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    layout = {name: {"columns": list(map(str, frame.columns)), "dtypes": {str(c): str(t) for c, t in frame.dtypes.items()}}
              for name, frame in sections.items()}
    for name, frame in sections.items():
        if "section" in frame.columns:
            raise ValueError(f"section {name!r} has a column named 'section', which the file format reserves")
    parts = [frame.assign(section=name) for name, frame in sections.items()]
    stacked = pd.concat(parts, ignore_index=True, sort=False) if parts else pd.DataFrame({"section": []})
    for column in stacked.columns:  # a column that is text in one section must stay text when others leave it empty
        if stacked[column].dtype == object:
            stacked[column] = stacked[column].map(lambda v: None if v is None or (isinstance(v, float) and v != v) else str(v))
    table = pa.Table.from_pandas(stacked, preserve_index=False)
    info = {"version": FORMAT_VERSION, "meta": meta, "sections": layout}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), META_KEY: json.dumps(info, default=str).encode()})
    pq.write_table(table, str(path))


def read_sections(path: str | Path) -> tuple[dict[str, pd.DataFrame], dict]:
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise InputError(f"No result file at {path}.")
    try:
        table = pq.read_table(str(path))
    except Exception as error:
        raise InputError(f"{path.name} could not be read as Parquet: {error}".rstrip(".") + ".") from None
    raw = (table.schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise InputError(f"{path.name} is a Parquet file but not a workbench sweep result (no '{META_KEY.decode()}' "
                         "metadata); write one with `workbench sweep ... --out FILE.parquet`.")
    info = json.loads(raw)
    stacked = table.to_pandas()
    sections = {}
    for name, layout in info["sections"].items():
        rows = stacked[stacked["section"] == name]
        frame = rows[layout["columns"]].reset_index(drop=True) if layout["columns"] else pd.DataFrame(index=range(len(rows)))
        for column, dtype in layout["dtypes"].items():
            if str(frame[column].dtype) != dtype:
                frame[column] = frame[column].astype(dtype)
        sections[name] = frame
    return sections, info["meta"]


def read_result(path: str | Path) -> SweepResult:
    """A result written by `SweepResult.to_parquet` (the command line's --out), section for section."""
    sections, meta = read_sections(path)
    meta = dict(meta)
    kind = meta.pop("kind", "sweep")
    return SweepResult(kind=kind, sections=sections, meta=meta)
