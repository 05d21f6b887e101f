"""The README.md model card `save_pretrained` writes: Hugging Face metadata, and what this project changed.

The front matter is what the Hub reads (library_name, base_model, tags, pipeline_tag; see
https://huggingface.co/docs/hub/model-cards). The body says what was done here: the heads pruned,
the tokens added, the head put on and whether it is trained, and metrics the app measured.

A card the source folder shipped with is never lost. Saved unchanged, the model keeps it as it is
(it still describes exactly these weights). Changed, the new card's changes come first and the
source card follows in full, below its own heading: the reader sees what differs before the
original claims, which may no longer hold (accuracy, for one, after pruning).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .config import HeadKey
from .embedded import EMBEDDED_MODELS
from .heads import PIPELINE_TASKS
from .task_heads import head_is_trained

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

LIBRARY_NAME = "transformers"  # the saved folder is transformers' format; the Hub's widgets key on this
PROJECT_TAG = "transformer-workbench"
_FRONT_MATTER = re.compile(r"\A---\s*\n(.*?)\n---\s*\n?", re.S)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class SourceFacts:
    """What the folder the model was loaded from said about itself, to tell what changed since."""
    task: str | None
    labels: dict[int, str]
    pruned_heads: dict[HeadKey, list[int]]
    card: str | None           # its README.md, if it shipped one


def base_model(model: "WorkbenchModel") -> str | None:
    """The hub id the model comes from: an embedded model's known source, or the hub id it was loaded by."""
    origin = getattr(model, "origin", "") or ""
    record = EMBEDDED_MODELS.get(origin)
    if record is not None:
        return record.base_model
    return origin if _HUB_ID.match(origin) and not Path(origin).exists() else None


def pipeline_tag(task: str | None) -> str:
    if task is None:
        return "feature-extraction"  # a bare body: its hidden states are the output
    if task == "seq2seq-lm":
        return "text2text-generation"  # the general one of translation, summarization, text2text
    return PIPELINE_TASKS.get(task, (task,))[0]


def source_facts(model: "WorkbenchModel") -> SourceFacts:
    source = Path(model.source) if model.source else None
    if source is None or not (source / "config.json").is_file():
        return SourceFacts(None, {}, {}, None)
    hf = json.loads((source / "config.json").read_text())
    family = model.family_record
    try:
        pruned = family.config_from_hf(hf).pruned_heads
    except Exception:  # a source config this family cannot read again: count every pruned head as new
        pruned = {}
    card = source / "README.md"
    return SourceFacts(family.task_of(hf.get("architectures")), {int(k): v for k, v in hf.get("id2label", {}).items()},
                       {k: sorted(v) for k, v in pruned.items() if v}, card.read_text() if card.is_file() else None)


def added_tokens(model: "WorkbenchModel") -> dict[str, int]:
    """Every token added since loading, over all `add_tokens` calls (models.vocabulary's change records)."""
    tokens: dict[str, int] = {}
    for change in getattr(model, "vocabulary_changes", ()):
        tokens.update(change.added)
    return tokens


def pruned_heads(model: "WorkbenchModel") -> dict[str, list[str]]:
    """{stack: ["L2.H0", ...]} in original head numbers, for stacks with pruned heads."""
    by_stack: dict[str, list[str]] = {}
    for (stack, layer), heads in sorted(model.config.pruned_heads.items()):
        by_stack.setdefault(stack, []).extend(f"L{layer}.H{head}" for head in sorted(heads))
    return {stack: names for stack, names in by_stack.items() if names}


def model_card(model: "WorkbenchModel", metrics: Mapping[str, Any] | None = None,
               source: SourceFacts | None = None) -> str | None:
    """The card's text, or None when the source card should be kept as it is (nothing changed)."""
    source = source or source_facts(model)
    metrics = dict(metrics or {})
    pruned, tokens = pruned_heads(model), added_tokens(model)
    current_pruned = {k: sorted(v) for k, v in model.config.pruned_heads.items() if v}
    head_changed = (model.task, model.labels) != (source.task, source.labels)
    changed = current_pruned != source.pruned_heads or bool(tokens) or head_changed or bool(metrics)
    if source.card is not None and not changed:
        return None
    base = base_model(model)
    tags = [PROJECT_TAG, model.family] + (["pruned"] if pruned else []) + (["added-tokens"] if tokens else [])
    meta: dict[str, Any] = {"library_name": LIBRARY_NAME}
    if base:
        meta["base_model"] = base
    license_ = _source_license(source.card)
    if license_:
        meta["license"] = license_
    meta["tags"] = tags
    meta["pipeline_tag"] = pipeline_tag(model.task)

    trained = head_is_trained(model)
    lines = [_yaml(meta), f"# {model.display_name}", "",
             f"Saved by Transformer Workbench: a {model.family} model, {model.n_layers} layers x {model.n_heads} heads, "
             f"d_model {model.config.d_model}.", "",
             "## What changed in Transformer Workbench" if source.card else "## How this model was made", "",
             f"- **Base model:** {base or getattr(model, 'origin', '') or model.source or 'unknown'}",
             "- **Heads pruned:** " + ("; ".join(f"{stack}: {', '.join(names)}" for stack, names in pruned.items())
                                       if pruned else "none"),
             "- **Tokens added:** " + (", ".join(f"`{t}` (id {i})" for t, i in tokens.items()) if tokens else "none"),
             "- **Task head:** " + (f"{model.task}; labels "
                                    + (", ".join(model.labels[i] for i in sorted(model.labels)) or "none")
                                    + f"; {'trained' if trained else 'untrained (initialised, not trained)'}"
                                    if model.task else "none (the bare body)"), ""]
    if metrics:
        lines += ["## Metrics measured in the app", "", "| metric | value |", "|---|---|"]
        lines += [f"| {name} | {_value(value)} |" for name, value in metrics.items()] + [""]
    if source.card:
        body = _FRONT_MATTER.sub("", source.card, count=1).strip()
        lines += ["## The source model's card", "", body, ""]
    return "\n".join(lines)


def write_model_card(model: "WorkbenchModel", folder: Path, metrics: Mapping[str, Any] | None = None,
                     source: SourceFacts | None = None) -> Path:
    source = source or source_facts(model)
    text = model_card(model, metrics, source)
    path = Path(folder) / "README.md"
    path.write_text(source.card if text is None else text)
    return path


def _yaml(meta: Mapping[str, Any]) -> str:
    """Front matter by hand: JSON strings are YAML scalars, so no YAML writer is needed."""
    out = ["---"]
    for key, value in meta.items():
        if isinstance(value, list):
            out += [f"{key}:"] + [f"- {json.dumps(v)}" for v in value]
        else:
            out.append(f"{key}: {json.dumps(value)}")
    return "\n".join(out + ["---", ""])


def _source_license(card: str | None) -> str | None:
    match = _FRONT_MATTER.match(card or "")
    found = re.search(r"^license:\s*(\S+)\s*$", match.group(1), re.M) if match else None
    return found.group(1).strip("'\"") if found else None


def _value(value: Any) -> str:
    text = f"{value:.4g}" if isinstance(value, float) else str(value)
    return text.replace("|", "\\|")  # a bar would end the table cell
