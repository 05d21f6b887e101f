"""Which model is which kind, asked of the registry and of the models themselves, never of a list of names.

An embedded model is known without loading it: its record says what it reads and which head it
carries, and `models.pipelines.DEFAULT_MODELS` says which tasks it is the default for. A model
this session owns (a pruned copy, a grown vocabulary, a new head) answers through its own
capabilities (`model.modality`, `model.task`, `model.tasks`), so a pruned text model stays a text
model. A folder or hub id is unknown until it is loaded.
"""
from __future__ import annotations

from dataclasses import dataclass

from models.embedded import EMBEDDED_MODELS
from models.pipelines import DEFAULT_MODELS, PIPELINES

from .model_cache import session_models


@dataclass(frozen=True)
class KnownModel:
    name: str
    modality: str                       # "text", "image" or "audio": what it reads
    task: str | None                    # the head it carries (models/heads.py names), None for a bare body


def known_models() -> list[KnownModel]:
    """The embedded models in the registry's order, then this session's own models."""
    return ([KnownModel(r.name, r.modality, r.task) for r in EMBEDDED_MODELS.values()]
            + [KnownModel(name, m.modality, m.task) for name, m in session_models().items()])


def modality_of(name: str) -> str | None:
    """What the model called ``name`` reads, or None for a folder or hub id (unknown until loaded)."""
    return next((k.modality for k in known_models() if k.name == name), None)


def names_for(modality: str, tasks: tuple[str | None, ...] | None = None) -> list[str]:
    """Known models that read ``modality`` and, if ``tasks`` is given, carry one of those heads."""
    return [k.name for k in known_models() if k.modality == modality and (tasks is None or k.task in tasks)]


def for_example(modality: str, tasks: tuple[str | None, ...], most: int = 2) -> str:
    """" (e.g. smollm2, minilm-sentiment)": known models with one of those heads, for a message; "" if none."""
    names = names_for(modality, tasks)[:most]
    return f" (e.g. {', '.join(names)})" if names else ""


def pipeline_tasks_for(modality: str) -> list[str]:
    """The pipeline tasks over ``modality`` input; those with an embedded default model first."""
    tasks = [t for t, p in PIPELINES.items() if p.modality == modality]
    return sorted(tasks, key=lambda t: t not in DEFAULT_MODELS)


def pipeline_pairs(modality: str) -> list[tuple[str, str]]:
    """(task, model name) for what serves a pipeline over ``modality`` input: each task's embedded default, then
    this session's own models under the tasks they serve (a pruned text model is never offered for images)."""
    pairs = [(task, name) for task, name in DEFAULT_MODELS.items() if modality_of(name) == modality]
    return pairs + [(task, name) for name, model in session_models().items() if model.modality == modality
                    for task in model.tasks]


def is_text_to_text(model) -> bool:
    """Reads text and writes text with an encoder and a decoder (T5, BART, Marian): pages built for one stack of
    heads (encoder-only or decoder-only) say so instead of reading only the decoder's half."""
    return model.modality == "text" and model.is_encoder_decoder
