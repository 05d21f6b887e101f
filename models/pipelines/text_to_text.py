"""Text-to-text pipelines: translation, summarization, text2text-generation, over any text encoder-decoder.

Each generates greedily, one beam (`max_new_tokens=`; otherwise the model's generation config's length, as
transformers does; transformers' text-to-text pipelines default to num_beams=4, so compare with num_beams=1), and
returns transformers' shapes: one text gives [{"translation_text": ...}] (or "summary_text", "generated_text"),
a list of texts gives one dict per text. Every result carries the trace of its source and output.
"""
from __future__ import annotations

from typing import Any

from ..deferred_patterns import DEFERRED
from ..errors import InputError
from ..text_to_text import TASK
from .base import Pipeline, register_pipeline, with_trace


class TextToTextPipeline(Pipeline):
    output_key = "generated_text"
    tasks_served = (TASK,)

    def check_model(self) -> None:
        if self.model.task != TASK:
            serves = ", ".join(self.model.tasks) or "no pipeline task"
            raise InputError(f"{self.task} needs a text-to-text model (an encoder-decoder with a language-modelling "
                             f"head, such as T5, BART or Marian); {self.model.display_name} is a "
                             f"{self.model.family} model that serves: {serves}.")

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        if isinstance(inputs, list):  # transformers gives one dict per text (not a list of one-dict lists)
            return [with_trace(result[0], result.trace, result.seconds) for result in
                    (self._timed(one, {**self.defaults, **kwargs}) for one in inputs)]
        return super().__call__(inputs, **kwargs)

    def run_one(self, text: Any, max_new_tokens: int | None = None, num_beams: int = 1):
        if num_beams != 1:
            raise InputError(f"{self.task} here decodes greedily (num_beams=1); num_beams={num_beams} is not "
                             "supported. transformers' pipeline defaults to 4 beams unless the model's generation "
                             "config says otherwise: pass num_beams=1 there to compare.")
        if not isinstance(text, str):
            raise InputError(f"{self.task} takes a text (or a list of texts), not {type(text).__name__}.")
        prefix = self.model.config.hf_config.get("prefix") or ""  # transformers' pipelines prepend config.prefix
        trace = self.model.run(prefix + text, max_new_tokens=max_new_tokens, capture=DEFERRED)
        return [{self.output_key: trace.extras["outputs"][0]}], trace


@register_pipeline
class TranslationPipeline(TextToTextPipeline):
    """[{"translation_text": ...}]."""
    task, output_key = "translation", "translation_text"


@register_pipeline
class SummarizationPipeline(TextToTextPipeline):
    """[{"summary_text": ...}]."""
    task, output_key = "summarization", "summary_text"


@register_pipeline
class Text2TextGenerationPipeline(TextToTextPipeline):
    """[{"generated_text": ...}]."""
    task, output_key = "text2text-generation", "generated_text"
