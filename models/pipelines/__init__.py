"""`pipeline(task, model)`: transformers' task pipelines over the instrumented core.

Results have the shapes transformers returns; each also carries `.trace` (the full run, to show
attention beside the answer) and `.seconds`. Supported tasks: fill-mask, text-classification,
token-classification, question-answering, text-generation, image-classification,
automatic-speech-recognition, audio-classification, zero-shot-image-classification, translation,
summarization, text2text-generation.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import InputError
from ..loading import load_model
from ..workbench_model import WorkbenchModel
from . import text, text_to_text, vision_audio, zero_shot_image  # noqa: F401  (registration)
from .base import PIPELINES, Pipeline, ResultDict, ResultList

# the embedded model each task opens on when none is named
DEFAULT_MODELS = {
    "text-classification": "minilm-sentiment", "text-generation": "smollm2", "image-classification": "vit-digits",
    "automatic-speech-recognition": "whisper-tiny.en",
    # the project's own translator writes numbers as words: a translation a class can check by eye
    "translation": "numbers-to-words", "text2text-generation": "numbers-to-words",
}
# the head each task needs, asked of the loader when a model is given by name
TASK_HEADS = {
    "fill-mask": "masked-lm", "text-classification": "sequence-classification",
    "token-classification": "token-classification", "question-answering": "question-answering",
    "text-generation": "causal-lm", "image-classification": "image-classification",
    "audio-classification": "audio-classification",
    "translation": "seq2seq-lm", "summarization": "seq2seq-lm", "text2text-generation": "seq2seq-lm",
}


def pipeline(task: str, model: str | Path | WorkbenchModel | None = None, **defaults: Any) -> Pipeline:
    """A callable for `task` over `model` (an embedded name, a folder, a hub id, or a loaded WorkbenchModel)."""
    if task not in PIPELINES:
        raise InputError(f"Unknown task {task!r}. Tasks: {', '.join(sorted(PIPELINES))}.")
    if model is None:
        if task not in DEFAULT_MODELS:
            raise InputError(f"{task} has no embedded default model; pass model= (a folder or hub id with that head).")
        model = DEFAULT_MODELS[task]
    if not isinstance(model, WorkbenchModel):
        loaded = load_model(model)
        wanted = TASK_HEADS.get(task)
        if wanted and loaded.task != wanted and loaded.modality == "text" and loaded.task is None:
            if loaded.is_native and wanted not in loaded.family_record.heads:
                served = ", ".join(loaded.tasks) or "no pipeline as it is"
                raise InputError(f"{task} needs a model with a {wanted} head; {loaded.display_name} "
                                 f"({loaded.family}) cannot carry one. It serves {served}.")
            loaded = load_model(model, task=wanted)  # a fresh, untrained head: the caller asked for this task
        model = loaded
    return PIPELINES[task](model, **defaults)


__all__ = ["pipeline", "PIPELINES", "Pipeline", "ResultList", "ResultDict", "DEFAULT_MODELS"]
