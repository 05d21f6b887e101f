"""Image and audio pipelines: image-classification, automatic-speech-recognition, audio-classification."""
from __future__ import annotations

from typing import Any

from ..deferred_patterns import DEFERRED
from ..errors import InputError
from .base import Pipeline, classification_scores, register_pipeline, top_labels


@register_pipeline
class ImageClassificationPipeline(Pipeline):
    """[{"label", "score"}] for the top_k labels (top_k=5), best first."""
    task, tasks_served, modality = "image-classification", ("image-classification",), "image"

    def run_one(self, image: Any, top_k: int = 5):
        trace = self.model.run(images=[image], capture=DEFERRED)
        scores = classification_scores(trace.logits[0], self.model.config.hf_config.get("problem_type"))
        return top_labels(scores, self.model.labels, top_k), trace


@register_pipeline
class SpeechRecognitionPipeline(Pipeline):
    """{"text": ...}: Whisper transcribes greedily; a CTC model reads its per-frame best symbols."""
    task, tasks_served, modality = "automatic-speech-recognition", ("automatic-speech-recognition", "ctc"), "audio"

    def run_one(self, audio: Any, sampling_rate: int | None = None):
        audio, sampling_rate = _unpack(audio, sampling_rate)
        trace = self.model.run(audio=[audio], sampling_rate=sampling_rate, capture=DEFERRED)
        if self.model.task == "ctc":
            n = trace.lengths[0]
            text = self.model.tokenizer.decode(trace.logits[0, :n].argmax(-1).tolist()) if self.model.tokenizer else ""
        else:
            text = trace.extras["transcripts"][0]
        return {"text": text}, trace


@register_pipeline
class AudioClassificationPipeline(Pipeline):
    """[{"score", "label"}] for the top_k labels (top_k=5), best first."""
    task, tasks_served, modality = "audio-classification", ("audio-classification",), "audio"

    def run_one(self, audio: Any, sampling_rate: int | None = None, top_k: int = 5):
        audio, sampling_rate = _unpack(audio, sampling_rate)
        trace = self.model.run(audio=[audio], sampling_rate=sampling_rate, capture=DEFERRED)
        scores = classification_scores(trace.logits[0], self.model.config.hf_config.get("problem_type"))
        return [{"score": r["score"], "label": r["label"]} for r in top_labels(scores, self.model.labels, top_k)], trace


def _unpack(audio: Any, sampling_rate: int | None):
    """transformers' pipelines take {"raw" or "array": samples, "sampling_rate": rate} too."""
    if isinstance(audio, dict):
        samples = audio.get("raw", audio.get("array"))
        if samples is None:
            raise InputError("An audio dict needs 'raw' (or 'array') and 'sampling_rate'.")
        return samples, audio.get("sampling_rate", sampling_rate)
    return audio, sampling_rate
