"""zero-shot-image-classification: rank labels nobody trained a classifier for, by image-text similarity (CLIP)."""
from __future__ import annotations

from typing import Any

from ..deferred_patterns import DEFERRED
from .base import Pipeline, register_pipeline

DEFAULT_TEMPLATE = "This is a photo of {}."


@register_pipeline
class ZeroShotImageClassificationPipeline(Pipeline):
    """[{"score", "label"}] over every candidate label, best first, the scores a softmax over the labels."""
    task, tasks_served, modality = "zero-shot-image-classification", ("zero-shot-image-classification",), "image"

    def run_one(self, image: Any, candidate_labels: list[str] | None = None,
                hypothesis_template: str = DEFAULT_TEMPLATE):
        trace = self.model.run(images=[image], candidate_labels=candidate_labels,
                               hypothesis_template=hypothesis_template, capture=DEFERRED)
        scores = trace.logits[0].float().softmax(-1).tolist()
        labels = trace.extras["candidate_labels"]
        # transformers sorts by -score, keeping the given order among equal scores
        ranked = sorted(zip(scores, labels), key=lambda pair: -pair[0])
        return [{"score": score, "label": label} for score, label in ranked], trace
