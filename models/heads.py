"""Task heads on top of a body, and their Hugging Face names.

A head maps the final hidden states (B, T, d) to logits. Which head a checkpoint carries is
read from its `architectures` entry (e.g. `BertForMaskedLM`), through `TASK_BY_SUFFIX`.
Formats are registered per (task, family) so new tasks and families add entries, not branches.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .block import ACTIVATIONS
from .config import ModelConfig

StateDict = dict[str, torch.Tensor]

TASK_BY_SUFFIX = {
    "ForCausalLM": "causal-lm", "LMHeadModel": "causal-lm",
    "ForMaskedLM": "masked-lm",
    "ForSequenceClassification": "sequence-classification",
    "ForTokenClassification": "token-classification",
    "ForQuestionAnswering": "question-answering",
}


def task_from_architectures(architectures: list[str] | None) -> str | None:
    for arch in architectures or []:
        for suffix, task in TASK_BY_SUFFIX.items():
            if arch.endswith(suffix):
                return task
    return None


class CausalLMHead(nn.Module):
    """Unembedding to the vocabulary at every position; usually tied to the token embedding."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)

    def forward(self, final, extras, attention_mask):
        return self.decoder(final)  # (B, T, vocab)


class BertMaskedLMHead(nn.Module):
    """BERT's MLM head: dense -> activation -> LayerNorm -> tied decoder + bias."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = ACTIVATIONS[cfg.activation]
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=True)

    def forward(self, final, extras, attention_mask):
        return self.decoder(self.norm(self.act(self.dense(final))))  # (B, T, vocab)


class PooledClassificationHead(nn.Module):
    """BERT's sequence classifier: a linear layer on the pooled [CLS] vector."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.hf_config.get("classifier_dropout") or cfg.hf_config.get("hidden_dropout_prob", 0.1))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(self.dropout(extras["pooled"]))  # (B, num_labels)


@dataclass(frozen=True)
class HeadFormat:
    architecture: str                                   # HF class name written to config.json
    build: Callable[[ModelConfig, int], nn.Module]      # (cfg, num_labels) -> head
    pairs: list[tuple[str, str]]                        # (HF name, our name under `head.`)
    tied: str | None = None                             # our head parameter tied to embed.word.weight


HEAD_FORMATS: dict[tuple[str, str], HeadFormat] = {}


def register_head(task: str, family: str, fmt: HeadFormat) -> None:
    HEAD_FORMATS[(task, family)] = fmt


_causal = lambda arch, hf_name: HeadFormat(arch, lambda cfg, n: CausalLMHead(cfg), [(hf_name, "decoder.weight")],
                                           tied="decoder.weight")
register_head("causal-lm", "gpt2", _causal("GPT2LMHeadModel", "lm_head.weight"))
register_head("causal-lm", "llama", _causal("LlamaForCausalLM", "lm_head.weight"))
register_head("masked-lm", "bert", HeadFormat(
    "BertForMaskedLM", lambda cfg, n: BertMaskedLMHead(cfg),
    [("cls.predictions.transform.dense.weight", "dense.weight"), ("cls.predictions.transform.dense.bias", "dense.bias"),
     ("cls.predictions.transform.LayerNorm.weight", "norm.weight"), ("cls.predictions.transform.LayerNorm.bias", "norm.bias"),
     ("cls.predictions.decoder.weight", "decoder.weight"), ("cls.predictions.bias", "decoder.bias")],
    tied="decoder.weight"))
register_head("sequence-classification", "bert", HeadFormat(
    "BertForSequenceClassification", lambda cfg, n: PooledClassificationHead(cfg, n),
    [("classifier.weight", "classifier.weight"), ("classifier.bias", "classifier.bias")]))


def head_format(task: str, family: str) -> HeadFormat:
    from .errors import UnsupportedArchitectureError
    if (task, family) not in HEAD_FORMATS:
        known = ", ".join(f"{t} ({f})" for t, f in sorted(HEAD_FORMATS))
        raise UnsupportedArchitectureError(f"No {task!r} head for the {family!r} family. Available: {known}.")
    return HEAD_FORMATS[(task, family)]
