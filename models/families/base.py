"""What a family provides, and the one registry families add themselves to.

A family turns a Hugging Face config into a `ModelConfig`, builds the network, converts state
dicts between Hugging Face names and ours both ways, and says what it reads (its modality and
input adapter), which task heads it has and what its checkpoints call them. The loader looks
families up by the config's `model_type`; there is no chain of `if architecture == ...`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from ..config import ModelConfig, pruned_heads_to_hf
from ..errors import ModelNotFoundError, UnsupportedArchitectureError
from ..heads import TASK_BY_SUFFIX, HeadFormat
from ..inputs import TEXT_INPUTS, InputAdapter
from ..tokenization import TextTokenizer

StateDict = dict[str, torch.Tensor]


def _text_tokenizer(folder: Path) -> TextTokenizer | None:
    """The folder's tokenizer, or None (a model run on token ids alone)."""
    try:
        return TextTokenizer.from_folder(folder)
    except ModelNotFoundError:
        return None


@dataclass(frozen=True)
class Family:
    name: str
    model_types: tuple[str, ...]                                   # HF `model_type` values served
    config_from_hf: Callable[[dict[str, Any]], ModelConfig]
    build: Callable[[ModelConfig], Any]                            # -> network (TransformerModel, EncoderDecoder)
    state_dict_from_hf: Callable[[StateDict, ModelConfig], StateDict]   # HF names -> ours (body only)
    state_dict_to_hf: Callable[[StateDict, ModelConfig], StateDict]     # ours -> HF names (body only)
    hf_prefix: Callable[[ModelConfig], str]                        # base-model prefix in task checkpoints
    base_architecture: Callable[[ModelConfig], str]                # HF class of the bare body ("BertModel")
    config_to_hf: Callable[[ModelConfig], dict[str, Any]] | None = None  # None: hf_config + vocab + pruned_heads
    heads: dict[str, HeadFormat] = field(default_factory=dict)     # task -> head format
    default_task: str | None = None                                # the task its pipeline serves by default
    modality: str = "text"                                         # what it reads: "text", "image", "audio"
    inputs: InputAdapter = TEXT_INPUTS                             # turns run()'s arguments into network inputs
    tokenizer: Callable[[Path], Any] | None = _text_tokenizer      # folder -> tokenizer or None
    processor: Callable[[Path, ModelConfig], Any] | None = None    # folder -> image or audio preprocessor
    make_pooler: Callable[[ModelConfig], Any] | None = None        # a pooler, when a checkpoint carries one
    architectures: dict[str, str] = field(default_factory=dict)    # more HF class names -> task
    fixed_task: bool = False                                       # the head is part of the architecture (Whisper)
    extra_files: tuple[str, ...] = ()                              # copied from the source folder on save

    def task_of(self, architectures: list[str] | None) -> str | None:
        """The task head a checkpoint's `architectures` entry names, or None for a bare body."""
        for arch in architectures or []:
            if arch in self.architectures:
                return self.architectures[arch]
            for task, fmt in self.heads.items():
                if fmt.architecture == arch:
                    return task
            for suffix, task in TASK_BY_SUFFIX.items():
                if arch.endswith(suffix) and task in self.heads:
                    return task
        return None

    def head(self, task: str) -> HeadFormat:
        if task not in self.heads:
            known = ", ".join(sorted(self.heads)) or "none"
            raise UnsupportedArchitectureError(f"No {task!r} head for the {self.name!r} family. Available heads: {known}.")
        return self.heads[task]

    def body_prefix(self, task: str | None, cfg: ModelConfig) -> str:
        """The base-model prefix of a `task` checkpoint: the family's, unless the head's format says otherwise."""
        fmt = self.heads.get(task) if task else None
        return fmt.body_prefix(cfg) if fmt is not None and fmt.body_prefix is not None else self.hf_prefix(cfg)

    def hf_config(self, cfg: ModelConfig) -> dict[str, Any]:
        """config.json fields for `cfg`: the family's own writer, or the source config with the vocabulary size and
        pruned heads brought up to date."""
        if self.config_to_hf is not None:
            return self.config_to_hf(cfg)
        hf = {**cfg.hf_config, "pruned_heads": pruned_heads_to_hf(cfg)}
        if cfg.vocab_size:
            hf["vocab_size"] = cfg.vocab_size
        return hf


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


def head_formats() -> dict[tuple[str, str], HeadFormat]:
    """Every registered head: (task, family name) -> format."""
    return {(task, family.name): fmt for family in FAMILIES.values() for task, fmt in family.heads.items()}


def rename(sd: StateDict, pairs: list[tuple[str, str]]) -> StateDict:
    """Pick `src` keys out of `sd` under `dst` names; missing sources raise KeyError naming them."""
    return {dst: sd[src] for src, dst in pairs if src in sd or _missing(src)}


def _missing(name: str) -> bool:
    raise KeyError(name)


def renamed_both_ways(pairs: Callable[[ModelConfig], list[tuple[str, str]]]
                      ) -> tuple[Callable[[StateDict, ModelConfig], StateDict], Callable[[StateDict, ModelConfig], StateDict]]:
    """(state_dict_from_hf, state_dict_to_hf) of a family whose checkpoint is a plain rename table of (HF, ours)."""
    def from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
        return rename(sd, pairs(cfg))

    def to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
        return rename(sd, [(ours, hf) for hf, ours in pairs(cfg)])
    return from_hf, to_hf


def layer_pairs(hf: str, ours: str, modules: dict[str, str], params: tuple[str, ...] = ("weight", "bias")
                ) -> list[tuple[str, str]]:
    """(HF name, our name) of every parameter of one layer, from a {our module: HF module} table."""
    return [(f"{hf}{theirs}.{p}", f"{ours}{mine}.{p}") for mine, theirs in modules.items() for p in params]


def refuse_unsupported(hf: dict[str, Any], family: str, **supported: Callable[[Any], bool]) -> None:
    """Raise, naming the key and its value, for the first config key whose value this family does not implement
    (`supported[key](value)` is False). A key that is absent counts as its default, which every family handles."""
    for key, ok in supported.items():
        if key in hf and not ok(hf[key]):
            raise UnsupportedArchitectureError(
                f"{family} checkpoints with {key}={hf[key]!r} are not supported: the workbench would compute "
                f"something else than transformers, so it refuses this key's value rather than ignore it.")


def by_model_type(names: dict[str, str], default: str) -> Callable[[ModelConfig], str]:
    """A `base_architecture` that depends on the checkpoint's model_type ({"roberta": "RobertaModel"})."""
    return lambda cfg: names.get(cfg.hf_config.get("model_type", ""), default)
