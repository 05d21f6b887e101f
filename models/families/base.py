"""What a family provides, and the registry families add themselves to.

A family turns a Hugging Face config into a `ModelConfig`, builds the network, and converts
state dicts between Hugging Face names and ours, both ways. The loader looks families up by
the config's `model_type`; there is no chain of `if architecture == ...`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from ..config import ModelConfig
from ..errors import UnsupportedArchitectureError

StateDict = dict[str, torch.Tensor]


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]                                   # HF `model_type` values served
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    config_to_hf: Callable[[ModelConfig], dict[str, Any]]
    build: Callable[[ModelConfig], Any]                            # -> TransformerModel without head
    state_dict_from_hf: Callable[[StateDict, ModelConfig], StateDict]   # HF names -> ours (body only)
    state_dict_to_hf: Callable[[StateDict, ModelConfig], StateDict]     # ours -> HF names (body only)
    hf_prefix: Callable[[ModelConfig], str]                        # base-model prefix in task checkpoints
    modality: str = "text"


FAMILIES: dict[str, Family] = {}
_BY_MODEL_TYPE: dict[str, Family] = {}


def register(family: Family) -> Family:
    FAMILIES[family.name] = family
    for model_type in family.model_types:
        _BY_MODEL_TYPE[model_type] = family
    return family


def family_for_model_type(model_type: str | None, architectures: list[str] | None = None) -> Family:
    if model_type in _BY_MODEL_TYPE:
        return _BY_MODEL_TYPE[model_type]
    supported = ", ".join(sorted(_BY_MODEL_TYPE))
    shown = model_type or (architectures[0] if architectures else "unknown")
    raise UnsupportedArchitectureError(
        f"Architecture {shown!r} is not supported. Supported model types: {supported}."
    )


def supported_model_types() -> list[str]:
    return sorted(_BY_MODEL_TYPE)


def rename(sd: StateDict, pairs: list[tuple[str, str]]) -> StateDict:
    """Pick `src` keys out of `sd` under `dst` names; missing sources raise KeyError naming them."""
    return {dst: sd[src] for src, dst in pairs if src in sd or _missing(src)}


def _missing(name: str) -> bool:
    raise KeyError(name)
