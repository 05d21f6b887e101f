"""Will a checkpoint fit? Estimated from its config and its safetensors headers before anything is allocated.

Loading holds the file's tensors and the float32 network at once, so the peak is about the weight
files' size plus four bytes per parameter. Both are known without reading a weight: the config
gives the shapes the network will have (a config that asks for 10,000 layers is caught here, even
with a 1 KB weight file), and a safetensors header lists every tensor's dtype and shape.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from .config import ModelConfig
from .errors import WeightFileError

FLOAT32 = 4
_DTYPE_BYTES = {"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2,
                "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
HEADROOM = 0.9  # leave a tenth of what is available for everything else


def check_shape(cfg: ModelConfig, folder: Path) -> None:
    """Sizes a network can be built with: positive layer and head counts, widths that fit together."""
    checks = {"layers": cfg.n_layers, "heads": cfg.n_heads, "key/value heads": cfg.n_kv_heads,
              "hidden size": cfg.d_model, "head width": cfg.d_head, "MLP width": cfg.d_mlp,
              "positions": cfg.max_positions}
    for what, value in checks.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise WeightFileError(f"{folder}/config.json asks for {value!r} {what}; it must be a whole number of "
                                  "at least 1. The config is broken: fix or replace it.")
    if cfg.n_heads % cfg.n_kv_heads:
        raise WeightFileError(f"{folder}/config.json: {cfg.n_heads} query heads cannot share {cfg.n_kv_heads} "
                              "key/value heads evenly.")
    if not isinstance(cfg.vocab_size, int) or isinstance(cfg.vocab_size, bool) or cfg.vocab_size < 0:
        raise WeightFileError(f"{folder}/config.json asks for a vocabulary of {cfg.vocab_size!r}; it must be a whole "
                              "number. The config is broken: fix or replace it.")
    eps = cfg.norm_eps
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < 1:
        raise WeightFileError(f"{folder}/config.json gives a norm epsilon of {eps!r}; it must be a small number such "
                              "as 1e-5. The config is broken: fix or replace it.")


def config_parameters(cfg: ModelConfig) -> int:
    """An upper estimate of the network's parameters from its config (gated MLP, untied unembedding)."""
    d = cfg.d_model
    attention = d * cfg.d_head * (2 * cfg.n_heads + 2 * cfg.n_kv_heads)
    hf = cfg.hf_config
    experts = int(hf.get("num_local_experts") or hf.get("num_experts") or 0)  # mixture-of-experts layers
    d_mlp = max(cfg.d_mlp, int(hf.get("moe_intermediate_size") or 0))
    layer = attention + 3 * d * d_mlp * (experts + 1) + 6 * d
    layers = sum(n for n, _ in cfg.stacks.values())
    # positions counted in full: a learned table has that many rows (a config asking for 10^9 would allocate
    # them); for rotary families this overstates a little, which errs on the safe side
    return 2 * cfg.vocab_size * d + cfg.max_positions * d + layers * layer


def weight_file_bytes(folder: Path) -> int:
    """Bytes the weight files will take in memory: from safetensors headers, else the files' sizes."""
    folder = Path(folder)
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        return sum(p.stat().st_size for p in folder.glob("*.bin") if p.is_file())
    return sum(_safetensors_bytes(path) for path in files)


def _safetensors_bytes(path: Path) -> int:
    try:
        with path.open("rb") as f:
            (length,) = struct.unpack("<Q", f.read(8))
            if length > 100_000_000:
                raise ValueError("header too long")
            header = json.loads(f.read(length))
    except (OSError, ValueError, struct.error) as error:
        raise WeightFileError(f"Cannot read {path.name}'s header: {error}. The file is truncated or corrupt.") from None
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        count = 1
        for dim in entry.get("shape", []):
            count *= int(dim)
        total += count * _DTYPE_BYTES.get(entry.get("dtype"), 4)
    return total


def available_memory() -> int | None:
    """Bytes the system can still give (MemAvailable), or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def check_fits(cfg: ModelConfig, folder: Path, name: str, limit: int | None = None) -> int:
    """The estimated peak bytes of loading `folder`; raises before anything is allocated when it exceeds
    `limit` (a server's cap) or what the machine has left."""
    need = weight_file_bytes(folder) + FLOAT32 * config_parameters(cfg)
    budget = [b for b in (limit, _headroom(available_memory())) if b is not None]
    if budget and need > min(budget):
        raise WeightFileError(
            f"{name} would need about {need / 2**30:.1f} GB to load (its weights plus a float32 copy), more than the "
            f"{min(budget) / 2**30:.1f} GB {'allowed' if limit is not None and limit == min(budget) else 'left on this machine'}. "
            "Choose a smaller model, or free memory (close other sessions' models) and try again.")
    return need


def _headroom(available: int | None) -> int | None:
    return None if available is None else int(available * HEADROOM)
