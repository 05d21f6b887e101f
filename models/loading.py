"""`load_model`: an embedded name, a local Hugging Face folder, or a hub id -> WorkbenchModel."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .embedded import EMBEDDED, embedded_names
from .errors import ModelNotFoundError, WeightFileError
from .families import family_for_model_type
from .heads import head_format, hf_body_prefix, initialise_like_transformers, task_from_architectures
from .tokenization import TextTokenizer
from .weights import load_into, read_state_dict
from .workbench_model import WorkbenchModel

# Files a hub download needs; never pickled weights when safetensors exist.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]

# Loaders for modalities other than text, registered by their own modules: model_type -> loader(folder, name)
MODALITY_LOADERS: dict[str, object] = {}


def load_model(name_or_path: str | Path, task: str | None = None) -> WorkbenchModel:
    """Load by embedded name (`minilm`, `smollm2`, ...), local folder, or Hugging Face hub id."""
    folder, label = resolve_folder(name_or_path)
    return load_folder(folder, name=label, task=task)


def resolve_folder(name_or_path: str | Path) -> tuple[Path, str]:
    text = str(name_or_path).strip()
    if not text:
        raise ModelNotFoundError("No model named: choose an embedded model, a local folder, or a hub id.")
    if text in EMBEDDED:
        return EMBEDDED[text](), text
    path = Path(text).expanduser()
    if path.is_dir():
        return path, path.name
    if path.exists():
        raise ModelNotFoundError(f"{text} is a file; pass the folder that holds config.json and the weights.")
    if text.startswith((".", "/", "~")) or text.count("/") > 1:
        raise ModelNotFoundError(f"Folder {text} does not exist.")
    return _from_hub(text), text


def _from_hub(repo_id: str) -> Path:
    try:
        from huggingface_hub import snapshot_download
    except ImportError as error:  # pragma: no cover - a dependency of the project
        raise ModelNotFoundError("huggingface_hub is not installed; run scripts/setup.sh.") from error
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS, local_files_only=True))
    except Exception:
        pass  # not cached: try the network below
    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except Exception as error:
        raise ModelNotFoundError(
            f"{repo_id!r} is not an embedded model ({', '.join(embedded_names())}), not a local folder, and could not "
            f"be fetched from the Hugging Face Hub ({type(error).__name__}). Offline, a hub model works only once it "
            "is in the local cache: connect once, or download it to a folder and pass that folder.") from error


def read_config(folder: Path) -> dict:
    path = Path(folder) / "config.json"
    if not path.exists():
        raise ModelNotFoundError(f"{folder} has no config.json, so it is not a Hugging Face model folder.")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise WeightFileError(f"{path} is not valid JSON: {error}.") from error


def load_folder(folder: Path, name: str = "", task: str | None = None) -> WorkbenchModel:
    hf = read_config(folder)
    model_type = hf.get("model_type")
    if model_type in MODALITY_LOADERS:
        return MODALITY_LOADERS[model_type](folder, name or Path(folder).name, task)
    family = family_for_model_type(model_type, hf.get("architectures"))
    cfg = family.config_from_hf(hf)
    network = family.build(cfg)
    state = read_state_dict(folder)
    checkpoint_task = task_from_architectures(hf.get("architectures"))
    prefix = hf_body_prefix(checkpoint_task, cfg, family.hf_prefix(cfg))
    body, rest = body_state(family, cfg, state, prefix, folder)
    task = task or checkpoint_task
    if network.pooler is not None and "pooler.dense.weight" not in body:
        if task == "sequence-classification":  # a new classifier needs a pooler: keep it freshly initialised
            body.update({f"pooler.{k}": v for k, v in network.pooler.state_dict().items()})
        else:
            network.pooler = None  # e.g. BertForMaskedLM checkpoints have none
    labels = {int(k): v for k, v in hf.get("id2label", {}).items()}
    if task is not None:
        fmt = head_format(task, cfg.family)
        network.head = fmt.build(cfg, max(len(labels), 2))
        for hf_name, ours in fmt.pairs:
            if hf_name in rest:
                body[f"head.{ours}"] = rest[hf_name]
            elif fmt.tied == ours:
                body[f"head.{ours}"] = body["embed.word.weight"]
            elif task == checkpoint_task:
                raise WeightFileError(f"{folder}: head weight {hf_name!r} is missing from the checkpoint.")
    load_into_with_new_head(network, body, str(folder), task != checkpoint_task)
    if task is not None and fmt.tied is not None:
        tied_hf_name = next(hf_name for hf_name, ours in fmt.pairs if ours == fmt.tied)
        if cfg.tie_word_embeddings or tied_hf_name not in rest:
            _tie(network, fmt.tied)
    tokenizer = _tokenizer(folder)
    return WorkbenchModel(network, cfg, tokenizer, name=name, task=task, labels=labels, source=str(folder))


def body_state(family, cfg, state: dict, prefix: str, folder: Path) -> tuple[dict, dict]:
    """(our body's state dict, the checkpoint's other weights): keys under `prefix` are the body's;
    a bare body checkpoint (no prefix) is all body, and its head weights are looked for in it too."""
    if any(k.startswith(prefix) for k in state):
        body_hf = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
    else:
        body_hf, rest = state, state
    try:
        return family.state_dict_from_hf(body_hf, cfg), rest
    except KeyError as missing:
        raise WeightFileError(f"{folder}: weight {missing.args[0]!r} is missing from the checkpoint.") from None


def _tie(network, head_param: str) -> None:
    module_path, attr = head_param.rsplit(".", 1)
    setattr(network.head.get_submodule(module_path), attr, network.embed.word.weight)


def load_into_with_new_head(network, state, source: str, new_head: bool) -> None:
    """Load weights; a head the checkpoint lacks is initialised as transformers does and flagged as untrained."""
    if new_head and network.head is not None:
        initialise_like_transformers(network.head, network.cfg, torch.Generator().manual_seed(0))
        fresh = {f"head.{k}": v for k, v in network.head.state_dict().items()}
        network.head.trained = all(k in state for k in fresh)  # read by models.task_heads.head_is_trained
        state = {**fresh, **{k: v for k, v in state.items() if k in fresh or not k.startswith("head.")}}
    load_into(network, state, source)


def _tokenizer(folder: Path) -> TextTokenizer | None:
    try:
        return TextTokenizer.from_folder(folder)
    except ModelNotFoundError:
        return None
