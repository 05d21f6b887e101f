"""Where finished shards wait until a sweep is done: one small Parquet of aggregates per shard.

A sweep's parts live in `root/<key>/`, the key being a hash of everything that decides the
numbers (the sweep, its parameters, the models' facts, the data's fingerprint, the shard size).
A shard is written atomically once it is complete, so after an interruption (Ctrl-C, a
crash, Cancel on the page) a rerun of the same sweep reads the shards already there and
computes only the rest. A different sweep on the same root gets its own key and never mixes.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import pandas as pd

from .results import read_sections, write_sections

Partial = dict[str, pd.DataFrame]


def sweep_key(description: dict) -> str:
    return hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:20]


class PartStore:
    """Shard partials on disk (resumable) or, with `root=None`, in memory (nothing survives the process)."""

    def __init__(self, root: str | Path | None, description: dict) -> None:
        self.description = description
        self.key = sweep_key(description)
        self.folder = Path(root) / self.key if root is not None else None
        self._memory: dict[int, Partial] = {}
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            manifest = self.folder / "manifest.json"
            if not manifest.exists():
                manifest.write_text(json.dumps(description, indent=1, sort_keys=True, default=str))

    def _path(self, index: int) -> Path:
        return self.folder / f"shard-{index:06d}.parquet"

    def done(self) -> set[int]:
        if self.folder is None:
            return set(self._memory)
        return {int(p.stem.split("-")[1]) for p in self.folder.glob("shard-*.parquet")}

    def put(self, index: int, partial: Partial) -> None:
        if self.folder is None:
            self._memory[index] = partial
            return
        temporary = self.folder / f".shard-{index:06d}.{os.getpid()}.tmp"
        write_sections(temporary, partial, {"shard": index})
        os.replace(temporary, self._path(index))

    def get(self, index: int) -> Partial:
        if self.folder is None:
            return self._memory[index]
        return read_sections(self._path(index))[0]

    def all(self, indices: list[int]) -> list[Partial]:
        """The partials of `indices`, in that order (the order every executor reduces in)."""
        return [self.get(i) for i in indices]

    def clear(self) -> None:
        self._memory.clear()
        if self.folder is not None and self.folder.exists():
            shutil.rmtree(self.folder, ignore_errors=True)
            parent = self.folder.parent
            if parent.exists() and not any(parent.iterdir()):
                parent.rmdir()
