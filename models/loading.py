"""`load_model`: an embedded name, a local Hugging Face folder, or a hub id -> WorkbenchModel."""
from __future__ import annotations

import json
from pathlib import Path

import torch

from .bridge import open_bridged
from .embedded import EMBEDDED, embedded_names
from .errors import ModelNotFoundError, UnsupportedArchitectureError, WeightFileError
from .families import family_for_model_type
from .heads import initialise_like_transformers
from .memory_budget import check_fits, check_shape
from .weights import load_into, read_state_dict
from .workbench_model import WorkbenchModel

# Files a hub download needs; never pickled weights when safetensors exist.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.txt", "*.model"]


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
    if not path.is_file():
        raise WeightFileError(f"{path} is not a regular file; a model folder's config.json must be one.")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightFileError(f"{path} is not valid JSON: {error}.") from error
    if not isinstance(config, dict):
        raise WeightFileError(f"{path} holds a JSON {type(config).__name__}, not the object a model config is.")
    architectures = config.get("architectures")
    if not isinstance(config.get("model_type", ""), str) or not (
            architectures is None or isinstance(architectures, list) and all(isinstance(a, str) for a in architectures)):
        raise WeightFileError(f"{path}: model_type must be a string and architectures a list of class names; "
                              "fix or replace the config.")
    return config


def load_folder(folder: Path, name: str = "", task: str | None = None) -> WorkbenchModel:
    """Any family's Hugging Face folder -> WorkbenchModel; `task` puts that head on (fresh when the checkpoint
    lacks it, flagged untrained). An architecture with no native family opens through the bridge over
    transformers (models/bridge.py) when transformers knows it; otherwise the error stays."""
    folder = Path(folder)
    hf = read_config(folder)
    try:
        family = family_for_model_type(hf.get("model_type"), hf.get("architectures"))
    except UnsupportedArchitectureError as refused:
        return open_bridged(folder, hf, refused, name=name or folder.name, task=task)
    try:
        cfg = family.config_from_hf(hf)
    except KeyError as missing:
        raise WeightFileError(f"{folder}/config.json lacks {missing.args[0]!r}, which a {family.name} config "
                              "needs. The config is incomplete: fix or replace it.") from None
    except (TypeError, ValueError, ZeroDivisionError, AttributeError) as error:
        raise WeightFileError(f"{folder}/config.json has a value a {family.name} config cannot take ({error}). "
                              "Fix or replace it.") from None
    check_shape(cfg, folder)
    check_fits(cfg, folder, name or folder.name)
    try:
        network = family.build(cfg)
    except (TypeError, ValueError, RuntimeError, AttributeError) as error:  # a value no layer can be built with
        raise WeightFileError(f"{folder}/config.json has a value a {family.name} network cannot be built with "
                              f"({error}). Fix or replace it.") from None
    state = read_state_dict(folder)
    checkpoint_task = family.task_of(hf.get("architectures"))
    if family.fixed_task:  # the head is part of the architecture (Whisper's unembedding)
        task = checkpoint_task = checkpoint_task or family.default_task
    task = task or checkpoint_task
    body, rest = body_state(family, cfg, state, family.body_prefix(checkpoint_task, cfg), folder)
    labels = {int(k): v for k, v in hf.get("id2label", {}).items()}
    fmt = family.head(task) if task is not None else None
    if fmt is not None:
        network.attach_head(fmt.build(cfg, max(len(labels), 2)))
        for hf_name, ours in fmt.pairs_for(cfg):
            key = f"{network.head_path}.{ours}"
            if hf_name in rest:
                body[key] = rest[hf_name]
            elif fmt.tied == ours:
                body[key] = body[network.word_embedding_key]
            elif task == checkpoint_task:
                raise WeightFileError(f"{folder}: head weight {hf_name!r} is missing from the checkpoint.")
    _attach_pooler(family, cfg, network, body)
    load_into_with_new_head(network, body, str(folder), task != checkpoint_task)
    if fmt is not None and fmt.tied is not None:
        tied_hf_name = next(hf_name for hf_name, ours in fmt.pairs_for(cfg) if ours == fmt.tied)
        if cfg.tie_word_embeddings or tied_hf_name not in rest:
            _tie(network, fmt.tied)
    model = WorkbenchModel(
        network, cfg, family.tokenizer(folder) if family.tokenizer else None, name=name or folder.name, task=task,
        labels=labels, source=str(folder), processor=family.processor(folder, cfg) if family.processor else None,
        generation_config=_generation_config(folder, hf))
    model.origin = name or folder.name  # the embedded name or hub id it was asked for: the model card's base model
    return model


def _attach_pooler(family, cfg, network, body: dict) -> None:
    """A pooler when the checkpoint has one; a fresh one when the head reads it (a new BERT classifier)."""
    if family.make_pooler is None:
        return
    has_weights = "pooler.dense.weight" in body
    if has_weights or getattr(network.head, "needs_pooler", False):
        network.pooler = family.make_pooler(cfg)
    if network.pooler is not None and not has_weights:
        body.update({f"pooler.{k}": v for k, v in network.pooler.state_dict().items()})


# generation settings a folder without generation_config.json keeps in config.json (older BART and Marian
# checkpoints); transformers' generate then reads them from there (GenerationConfig.from_model_config)
CONFIG_GENERATION_KEYS = ("decoder_start_token_id", "forced_bos_token_id", "forced_eos_token_id", "bad_words_ids",
                          "suppress_tokens", "begin_suppress_tokens")


def _generation_config(folder: Path, hf: dict) -> dict:
    path = folder / "generation_config.json"
    if path.exists():
        return json.loads(path.read_text())
    return {k: hf[k] for k in CONFIG_GENERATION_KEYS if hf.get(k) is not None}


def body_state(family, cfg, state: dict, prefix: str, folder: Path) -> tuple[dict, dict]:
    """(our body's state dict, the checkpoint's other weights): keys under `prefix` are the body's;
    a bare body checkpoint (no prefix) is all body, and its head weights are looked for in it too. An empty
    prefix (CLIP: two towers and the projections side by side) is the same: every weight is both."""
    if prefix and any(k.startswith(prefix) for k in state):
        body_hf = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        rest = {k: v for k, v in state.items() if not k.startswith(prefix)}
    else:
        body_hf, rest = state, state
    try:
        return family.state_dict_from_hf(body_hf, cfg), rest
    except KeyError as missing:
        raise WeightFileError(f"{folder}: weight {missing.args[0]!r} is missing from the checkpoint.") from None
    except (RuntimeError, ValueError, IndexError) as error:  # a fused tensor split by the config's sizes
        raise WeightFileError(f"{folder}: the weights do not fit the config's sizes ({error}); the config and the "
                              "weights come from different models: fix or replace one.") from None


def _tie(network, head_param: str) -> None:
    module_path, attr = head_param.rsplit(".", 1)
    setattr(network.head.get_submodule(module_path), attr, network.embed.word.weight)


def load_into_with_new_head(network, state, source: str, new_head: bool) -> None:
    """Load weights; a head the checkpoint lacks is initialised as transformers does and flagged as untrained."""
    if new_head and network.head is not None:
        initialise_like_transformers(network.head, network.cfg, torch.Generator().manual_seed(0))
        prefix = network.head_path + "."
        fresh = {prefix + k: v for k, v in network.head.state_dict().items()}
        network.head.trained = all(k in state for k in fresh)  # read by models.task_heads.head_is_trained
        state = {**fresh, **{k: v for k, v in state.items() if k in fresh or not k.startswith(prefix)}}
    load_into(network, state, source)
