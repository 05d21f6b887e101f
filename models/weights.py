"""Reading weight files safely: safetensors first, pytorch_model.bin only with weights_only=True."""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from .errors import WeightFileError


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    folder = Path(folder)
    single = folder / "model.safetensors"
    index = folder / "model.safetensors.index.json"
    legacy = folder / "pytorch_model.bin"
    if single.exists():
        return _load_safetensors(single)
    if index.exists():
        shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        state: dict[str, torch.Tensor] = {}
        for shard in shards:
            state.update(_load_safetensors(folder / shard))
        return state
    if legacy.exists():
        try:
            return torch.load(legacy, map_location="cpu", weights_only=True)
        except Exception as error:  # pickle errors, truncation, disallowed globals
            raise WeightFileError(f"Cannot read {legacy.name}: {error}. The file may be truncated or not a plain "
                                  "state dict (only weights are loaded, never code).") from error
    raise WeightFileError(f"No weights in {folder}: expected model.safetensors (or a sharded index) or pytorch_model.bin.")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.exists():
        raise WeightFileError(f"Weight shard {path.name} is missing from {path.parent}.")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as error:
        raise WeightFileError(f"Cannot read {path.name}: {error}. The file is truncated or corrupt; "
                              "download or convert it again.") from error


def load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Copy `state` into `module`, naming every missing or misshapen tensor instead of a bare RuntimeError."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    wrong = [f"{k}: file {tuple(state[k].shape)}, model {tuple(expected[k].shape)}"
             for k in expected if k in state and state[k].shape != expected[k].shape]
    if wrong:
        raise WeightFileError(f"{source}: weights do not match the config's shapes: " + "; ".join(wrong[:5])
                              + (f" (and {len(wrong) - 5} more)" if len(wrong) > 5 else ""))
    if missing:
        raise WeightFileError(f"{source}: weights missing for " + ", ".join(missing[:5])
                              + (f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""))
    _check_values(state, expected, source)
    module.load_state_dict({k: state[k].to(expected[k].dtype) for k in expected}, strict=True)


def _check_values(state: dict[str, torch.Tensor], expected: dict[str, torch.Tensor], source: str) -> None:
    """Refuse integer or bool tensors where the network holds floats, and NaN anywhere: `.to(float)` would load
    either without a word, and the model would then compute nonsense."""
    floating = [k for k in expected if expected[k].is_floating_point()]
    not_float = [f"{k} ({state[k].dtype})" for k in floating if not state[k].is_floating_point()]
    if not_float:
        raise WeightFileError(f"{source}: weights must be floating point, but " + ", ".join(not_float[:5])
                              + (f" (and {len(not_float) - 5} more)" if len(not_float) > 5 else "")
                              + " are not. The file was written wrongly: convert or download it again.")
    with_nan = [k for k in floating if bool(torch.isnan(state[k]).any())]
    if with_nan:
        raise WeightFileError(f"{source}: weights hold NaN in " + ", ".join(with_nan[:5])
                              + (f" (and {len(with_nan) - 5} more)" if len(with_nan) > 5 else "")
                              + ". The checkpoint is broken (a diverged training run or a bad conversion): use another.")
