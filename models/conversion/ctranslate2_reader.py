"""Minimal reader for CTranslate2 ``model.bin`` files.

Why hand-written: the ``ctranslate2`` package is a heavy native dependency
(C++ runtime, platform-specific wheels) and it has no API to export weights
back out of a converted model -- it only runs them.  The file format is a
simple little-endian container, so a ~100 line pure-numpy reader is enough to
recover every tensor for a one-time conversion to Hugging Face format.

Layout (all integers little-endian)::

    u32     binary version (>= 2 for spec revision; aliases from version 4)
    string  spec name            e.g. "WhisperSpec"
    u32     spec revision        (only present when version >= 2)
    u32     variable count
    repeat variable count times:
        string  name             e.g. "encoder/layer_0/ffn/linear_0/weight"
        u8      rank
        u32     dims[rank]
        u8      dtype            0 f32, 1 i8, 2 i16, 3 i32, 4 f16, 5 bf16
        u32     byte count
        bytes   data             (row-major)
    u32     alias count          (version >= 3)
    repeat alias count times:
        string  alias name
        string  target variable name

A ``string`` is a u16 byte length followed by that many bytes; the stored
bytes include a trailing NUL terminator, which is stripped.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# CTranslate2 DataType enum (include/ctranslate2/types.h).
_DTYPES: dict[int, np.dtype] = {
    0: np.dtype("<f4"),
    1: np.dtype("i1"),
    2: np.dtype("<i2"),
    3: np.dtype("<i4"),
    4: np.dtype("<f2"),
    5: np.dtype("<u2"),  # bfloat16: raw bits, widened to float32 below
}
_BF16 = 5


@dataclass
class CTranslate2Model:
    """Contents of a ``model.bin``: header fields, tensors and aliases."""

    version: int
    spec_name: str
    spec_revision: int
    variables: dict[str, np.ndarray] = field(default_factory=dict)
    # alias name -> target variable name (the alias is also in ``variables``).
    aliases: dict[str, str] = field(default_factory=dict)


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise ValueError(
                f"truncated CTranslate2 file: wanted {n} bytes at offset {self.pos}, "
                f"file has {len(self.data)}"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> int:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))[0]

    def string(self) -> str:
        length = self.unpack("H")
        raw = self.take(length)
        return raw.split(b"\0", 1)[0].decode("utf-8")

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos


def read_ctranslate2_model(path: str | Path) -> CTranslate2Model:
    """Parse a CTranslate2 ``model.bin`` (or a folder containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / "model.bin"
    cur = _Cursor(path.read_bytes())

    version = cur.unpack("I")
    if version < 1 or version > 6:
        raise ValueError(f"unsupported CTranslate2 binary version {version} in {path}")
    spec_name = cur.string()
    spec_revision = cur.unpack("I") if version >= 2 else 1
    n_vars = cur.unpack("I")

    model = CTranslate2Model(version, spec_name, spec_revision)
    for _ in range(n_vars):
        name = cur.string()
        rank = cur.unpack("B")
        shape = tuple(cur.unpack("I") for _ in range(rank))
        dtype_id = cur.unpack("B")
        if dtype_id not in _DTYPES:
            raise ValueError(f"variable {name!r}: unknown dtype id {dtype_id}")
        n_bytes = cur.unpack("I")
        dtype = _DTYPES[dtype_id]
        expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if n_bytes != expected:
            raise ValueError(
                f"variable {name!r}: byte count {n_bytes} != {expected} for shape {shape} "
                f"dtype {dtype}"
            )
        arr = np.frombuffer(cur.take(n_bytes), dtype=dtype).reshape(shape).copy()
        if dtype_id == _BF16:
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        model.variables[name] = arr

    if version >= 3 and cur.remaining:
        n_aliases = cur.unpack("I")
        for _ in range(n_aliases):
            alias = cur.string()
            target = cur.string()
            if target not in model.variables:
                raise ValueError(f"alias {alias!r} points to unknown variable {target!r}")
            model.aliases[alias] = target
            model.variables[alias] = model.variables[target]

    if cur.remaining:
        raise ValueError(f"{cur.remaining} unexpected trailing bytes in {path}")
    return model


def read_ctranslate2_variables(path: str | Path) -> dict[str, np.ndarray]:
    """Return ``{variable name: numpy array}``, aliases resolved to their targets."""
    return read_ctranslate2_model(path).variables
