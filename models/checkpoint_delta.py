"""Ship a fine-tuned model as the tensors that changed, and compose it with its base at load time.

A model trained from an embedded base (e.g. MiniLM with a sentiment head whose last layer,
pooler and classifier were trained) differs from the base in a few tensors. `save_delta`
writes only those (plus the config and a model card), a few MB instead of 90; `compose`
rebuilds the full Hugging Face folder from the base package and the delta, once, into the
conversion cache (models/embedded.py). transformers and this project then load the same folder.
"""
from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import torch
from safetensors.torch import load_file, save_file

from .errors import ModelNotFoundError, WeightFileError
from .weights import read_state_dict

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

# base name -> its folder; the default reads the name as a folder path (models.loading.resolve_folder knows more)
Resolve = Callable[[str], Path]

DELTA_FILE = "delta.safetensors"
BASE_FILE = "base.json"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def save_delta(model: "WorkbenchModel", base: str, folder: str | Path, card: dict[str, Any] | None = None,
               dtype: torch.dtype = torch.float16, resolve: Resolve = Path) -> Path:
    """Write the tensors of `model` that differ from the embedded model `base`, its config, and a card.

    Changed tensors are stored in `dtype` (float16 halves the size; compose loads them as float32,
    and the card's numbers must be measured on the composed model, which `card` is for).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    base_folder = resolve(base)
    base_state = read_state_dict(base_folder)
    with tempfile.TemporaryDirectory() as scratch:
        model.save_pretrained(scratch)
        full = load_file(str(Path(scratch) / "model.safetensors"))
        config = json.loads((Path(scratch) / "config.json").read_text())
        prefix = _body_prefix(full, base_state)
        changed = {name: tensor.to(dtype) if tensor.is_floating_point() else tensor
                   for name, tensor in full.items()
                   if not _same(base_state.get(name[len(prefix):] if name.startswith(prefix) else name), tensor)}
        save_file(changed, str(folder / DELTA_FILE), metadata={"format": "pt"})
        (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
        base_vocab = _vocabulary(base_folder)
        if base_vocab is None or base_vocab != _vocabulary(Path(scratch)):  # a grown vocabulary travels along
            for name in TOKENIZER_FILES:
                if (Path(scratch) / name).exists():
                    shutil.copy(Path(scratch) / name, folder / name)
        unused = sorted(name for name in base_state if prefix + name not in full)  # e.g. position_ids buffers
    meta = {"base": base, "body_prefix": prefix, "unused_base_tensors": unused, "card": card or {}}
    (folder / BASE_FILE).write_text(json.dumps(meta, indent=2))
    return folder


def compose(delta_folder: str | Path, out: str | Path, resolve: Resolve = Path) -> Path:
    """Base checkpoint + delta -> a complete Hugging Face folder at `out` (float32); `resolve` finds the base."""
    delta_folder, out = Path(delta_folder), Path(out)
    if not (delta_folder / BASE_FILE).exists():
        raise ModelNotFoundError(f"{delta_folder} is not a saved delta: {BASE_FILE} is missing.")
    meta = json.loads((delta_folder / BASE_FILE).read_text())
    base_folder = resolve(meta["base"])
    prefix = meta.get("body_prefix", "")
    unused = set(meta.get("unused_base_tensors", []))
    state = {prefix + name: tensor for name, tensor in read_state_dict(base_folder).items() if name not in unused}
    try:
        delta = load_file(str(delta_folder / DELTA_FILE))
    except Exception as error:  # truncated or corrupt file
        raise WeightFileError(f"Cannot read {delta_folder / DELTA_FILE}: {error}.") from error
    state.update({name: t.float() if t.is_floating_point() else t for name, t in delta.items()})
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in state.items()}, str(out / "model.safetensors"), metadata={"format": "pt"})
    shutil.copy(delta_folder / "config.json", out / "config.json")
    source = delta_folder if (delta_folder / "tokenizer.json").exists() else base_folder
    for name in TOKENIZER_FILES:
        if (source / name).exists():
            shutil.copy(source / name, out / name)
    return out


def delta_digest(delta_folder: str | Path) -> str:
    """A short content hash, so a retrained delta is composed afresh instead of read from a stale cache."""
    digest = hashlib.sha256()
    for name in (DELTA_FILE, "config.json", BASE_FILE):
        path = Path(delta_folder) / name
        if path.exists():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def _body_prefix(full: dict[str, torch.Tensor], base: dict[str, torch.Tensor]) -> str:
    """The prefix task checkpoints put before body names ("bert."), found by matching a base name."""
    for name in full:
        for base_name in base:
            if name.endswith("." + base_name) and name[: -len(base_name)].count(".") == 1:
                return name[: -len(base_name)]
    return ""


def _same(a: torch.Tensor | None, b: torch.Tensor) -> bool:
    return a is not None and a.shape == b.shape and torch.equal(a.to(b.dtype), b)


def _vocabulary(folder: Path) -> dict | None:
    path = folder / "tokenizer.json"
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    return {"vocab": data.get("model", {}).get("vocab"), "added": [t.get("content") for t in data.get("added_tokens", [])]}
