"""One body, many task heads: `with_head(model, task)` returns a new model with the same body and another head.

This is the Transformers pattern of `BertModel` under `BertForMaskedLM`, `BertForSequenceClassification`,
`BertForTokenClassification` and `BertForQuestionAnswering` (Wolf et al. 2020, "Transformers:
State-of-the-Art Natural Language Processing"), made a one-call swap. A head whose weights the
model's checkpoint carries (same task, same shapes) is loaded from it; any other head is
initialised as transformers initialises it and flagged as untrained until it is trained.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

import torch
from safetensors import safe_open

from .errors import InputError
from .families import FAMILIES, Family
from .heads import initialise_like_transformers

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

# Tasks whose head has one output per label (the others have the vocabulary, or start/end, as outputs)
LABELLED_TASKS = ("sequence-classification", "token-classification", "image-classification", "audio-classification")

Labels = Sequence[str] | Mapping[int, str]


def available_heads(family: str) -> list[str]:
    """The tasks a family has a head for, in a stable order; none for an architecture with no native family
    (a bridged model, models/bridge.py)."""
    order = ["masked-lm", "causal-lm", "sequence-classification", "token-classification", "question-answering"]
    have = set(FAMILIES[family].heads) if family in FAMILIES else set()
    return [t for t in order if t in have] + sorted(have - set(order))


def head_is_trained(model: "WorkbenchModel") -> bool | None:
    """None without a head; False for a head that was initialised here or by the loader and not trained since."""
    head = model.network.head
    return None if head is None else bool(getattr(head, "trained", True))


def with_head(model: "WorkbenchModel", task: str, labels: Labels | None = None, seed: int = 0) -> "WorkbenchModel":
    """A new model with `model`'s body (copied, so training one never touches the other) and a `task` head.

    labels: label names for classification heads, as a list (id = position) or {id: name}. Without
    them the current head's labels (same task) or the checkpoint's `id2label` are kept, else two
    placeholder labels LABEL_0 and LABEL_1, as transformers does.
    """
    family = model.family_record
    if family.fixed_task:
        raise InputError(f"{model.display_name}'s {model.task} head is part of its architecture; it cannot be swapped.")
    fmt = family.head(task)  # raises with the list of available heads
    checkpoint = _CheckpointHeads(model.source, family)
    label_map = _resolve_labels(model, task, labels, checkpoint)

    config = copy.deepcopy(model.config)
    for key in ("id2label", "label2id", "num_labels"):
        config.hf_config.pop(key, None)  # save_pretrained writes the new head's labels
    if task == "sequence-classification" and config.causal:  # decoder classifiers read the last real token
        _ensure_pad_token_id(config, model)

    network = copy.deepcopy(model.network)  # the original, perhaps shared by many sessions, is never touched
    network.set_config(config)
    current = network.head
    network.attach_head(None)

    generator = torch.Generator().manual_seed(seed)
    head = fmt.build(config, max(len(label_map), 2))
    word = getattr(network.embed, "word", None)  # image and audio embeddings have no token rows
    embed_weight = word.weight if word is not None else None
    initialise_like_transformers(head, config, generator, keep=(embed_weight,) if embed_weight is not None else ())
    if current is not None and model.task == task and label_map == model.labels and _same_shapes(current, head):
        head, trained = current, bool(getattr(current, "trained", True))  # the same head: keep it as it is
    else:
        trained = _load_from_checkpoint(head, fmt, checkpoint, task, label_map, labels is None, embed_weight, config)
    if getattr(head, "needs_pooler", False) and network.pooler is None:
        trained = _add_pooler(network, config, family, checkpoint, generator) and trained
    head.trained = trained
    network.attach_head(head)
    base = model.display_name.removesuffix(f" ({model.task})")
    return model.derive(network, config, tokenizer=copy.deepcopy(model.tokenizer), name=f"{base} ({task})",
                        task=task, labels=label_map)


# ---------------------------------------------------------------------------- helpers

def _resolve_labels(model: "WorkbenchModel", task: str, labels: Labels | None, checkpoint: "_CheckpointHeads") -> dict[int, str]:
    if task not in LABELLED_TASKS:
        if labels:
            raise InputError(f"A {task} head has no labels to name; pass labels only for "
                             f"{' or '.join(LABELLED_TASKS)} heads.")
        return {}
    if labels is not None:
        return _label_map(labels)
    if model.task == task and model.labels:
        return dict(model.labels)
    if checkpoint.task == task and checkpoint.labels:
        return dict(checkpoint.labels)
    return {0: "LABEL_0", 1: "LABEL_1"}


def _label_map(labels: Labels) -> dict[int, str]:
    """Validate label names given as a list or {id: name}; ids must be 0..n-1, names unique and non-empty."""
    if isinstance(labels, Mapping):
        try:
            pairs = sorted((int(k), v) for k, v in labels.items())
        except (TypeError, ValueError):
            raise InputError("Label ids must be whole numbers, e.g. {0: 'negative', 1: 'positive'}.") from None
        if [k for k, _ in pairs] != list(range(len(pairs))):
            raise InputError(f"Label ids must be 0..{len(pairs) - 1} with none missing; got {[k for k, _ in pairs]}.")
        names = [v for _, v in pairs]
    elif isinstance(labels, str):
        raise InputError("Pass the labels as a list of names, e.g. ['negative', 'positive'], not one string.")
    else:
        names = list(labels)
    if any(not isinstance(n, str) or not n.strip() for n in names):
        raise InputError("Every label needs a non-empty name.")
    names = [n.strip() for n in names]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise InputError(f"Label names must be unique; repeated: {', '.join(repeated)}.")
    if len(names) < 2:
        raise InputError(f"A classification head needs at least two labels; got {names}.")
    return dict(enumerate(names))


def _load_from_checkpoint(head, fmt, checkpoint: "_CheckpointHeads", task: str, label_map: dict[int, str],
                          labels_free: bool, embed_weight: torch.Tensor, config) -> bool:
    """Fill `head` from the checkpoint where it has this task's head; True when every weight was found."""
    same_labels = labels_free or label_map == checkpoint.labels or task not in LABELLED_TASKS
    pairs = fmt.pairs_for(config)
    found = checkpoint.tensors(task, [hf for hf, _ in pairs]) if same_labels else {}
    params = dict(head.named_parameters())
    trained = True
    for hf_name, ours in pairs:
        if ours == fmt.tied:
            continue
        if hf_name in found and found[hf_name].shape == params[ours].shape:
            with torch.no_grad():
                params[ours].copy_(found[hf_name])
        else:
            trained = False
    if fmt.tied is not None:
        tied_name = next(hf for hf, ours in pairs if ours == fmt.tied)
        own = found.get(tied_name)
        module_path, attr = fmt.tied.rsplit(".", 1)
        if own is not None and not config.tie_word_embeddings and own.shape == embed_weight.shape:
            with torch.no_grad():
                getattr(head.get_submodule(module_path), attr).copy_(own)  # an untied unembedding (Llama)
        else:
            setattr(head.get_submodule(module_path), attr, embed_weight)  # tied: the unembedding is the embedding
    return trained


def _same_shapes(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


def _ensure_pad_token_id(config, model: "WorkbenchModel") -> None:
    """Decoder classifiers find the last real token by the padding id: transformers needs it in the config."""
    if config.hf_config.get("pad_token_id") is not None:
        return
    pad = model.tokenizer.pad_token_id if model.tokenizer is not None else None
    pad = pad if pad is not None else config.eos_token_id
    if pad is None:
        raise InputError(f"{model.name or model.family} has no padding or end-of-text token, which a sequence "
                         "classifier on a decoder needs to find each text's last token.")
    config.hf_config["pad_token_id"] = int(pad)
    config.pad_token_id = int(pad)


def _add_pooler(network, config, family: Family, checkpoint: "_CheckpointHeads", generator: torch.Generator) -> bool:
    """Give a BERT body the pooler its classifier reads; True when its weights came from the checkpoint."""
    pooler = family.make_pooler(config) if family.make_pooler is not None else None
    if pooler is None:
        raise InputError(f"A {family.name} body has no pooler for a pooled classifier to read.")
    initialise_like_transformers(pooler, config, generator)
    names = {"pooler.dense.weight": pooler.dense.weight, "pooler.dense.bias": pooler.dense.bias}
    found = checkpoint.body_tensors(list(names))
    loaded = all(n in found and found[n].shape == p.shape for n, p in names.items())
    if loaded:
        with torch.no_grad():
            for n, p in names.items():
                p.copy_(found[n])
    network.pooler = pooler
    return loaded


class _CheckpointHeads:
    """Lazy access to the head tensors of the checkpoint a model was loaded from (if it was a folder)."""

    def __init__(self, source: str, family: Family) -> None:
        folder = Path(source) if source else None
        self.folder = folder if folder is not None and (folder / "config.json").exists() else None
        hf = json.loads((self.folder / "config.json").read_text()) if self.folder else {}
        self.task = family.task_of(hf.get("architectures"))
        self.labels = {int(k): v for k, v in hf.get("id2label", {}).items()}

    def tensors(self, task: str, names: list[str]) -> dict[str, torch.Tensor]:
        """Head tensors by Hugging Face name, only from a checkpoint of the same task (names repeat across tasks)."""
        return self._read(names) if task == self.task else {}

    def body_tensors(self, names: list[str]) -> dict[str, torch.Tensor]:
        found = self._read(names)
        if len(found) < len(names):  # task checkpoints prefix the body: bert.pooler.dense.weight
            prefixed = self._read_suffix(names)
            found.update(prefixed)
        return found

    def _files(self) -> list[Path]:
        if self.folder is None:
            return []
        if (self.folder / "model.safetensors").exists():
            return [self.folder / "model.safetensors"]
        index = self.folder / "model.safetensors.index.json"
        if index.exists():
            return sorted({self.folder / f for f in json.loads(index.read_text())["weight_map"].values()})
        return []  # pickled checkpoints are not opened just to look for a head

    def _read(self, names: list[str]) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        for path in self._files():
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                found.update({n: f.get_tensor(n) for n in names if n in keys})
        return found

    def _read_suffix(self, names: list[str]) -> dict[str, torch.Tensor]:
        found: dict[str, torch.Tensor] = {}
        for path in self._files():
            with safe_open(str(path), framework="pt") as f:
                for key in f.keys():
                    for n in names:
                        if key.endswith("." + n) and key.count(".") == n.count(".") + 1:
                            found[n] = f.get_tensor(key)
        return found
