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
    "ForConditionalGeneration": "seq2seq-lm",  # text encoder-decoders (Whisper's own head format is matched first)
}


# the pipelines (models/pipelines) a model with this head serves
PIPELINE_TASKS: dict[str, tuple[str, ...]] = {
    "masked-lm": ("fill-mask",), "sequence-classification": ("text-classification",),
    "token-classification": ("token-classification",), "question-answering": ("question-answering",),
    "causal-lm": ("text-generation",), "image-classification": ("image-classification",),
    "audio-classification": ("audio-classification",), "ctc": ("automatic-speech-recognition",),
    "automatic-speech-recognition": ("automatic-speech-recognition",),
    "zero-shot-image-classification": ("zero-shot-image-classification",),
    "seq2seq-lm": ("translation", "summarization", "text2text-generation"),
}


class CausalLMHead(nn.Module):
    """Unembedding to the vocabulary at every position; usually tied to the token embedding."""

    def __init__(self, cfg: ModelConfig, bias: bool = False) -> None:
        super().__init__()
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=bias)  # GPT-J and Phi carry a bias
        self.logits_scale = cfg.logits_scale    # Granite divides the logits by this
        self.softcap = cfg.final_softcap        # Gemma 2 soft-caps them

    def forward(self, final, extras, attention_mask):
        logits = self.decoder(final)  # (B, T, vocab)
        if self.logits_scale is not None:
            logits = logits / self.logits_scale
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits


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


class Pooler(nn.Module):
    """tanh(dense(h[CLS])): BERT's sentence vector, read by its classification head (ViT has the same pooler)."""

    def __init__(self, d_model: int) -> None:
        super().__init__()
        self.dense = nn.Linear(d_model, d_model)

    def forward(self, final: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(final[:, 0]))  # (B, d)


class PooledClassificationHead(nn.Module):
    """BERT's sequence classifier: a linear layer on the pooled [CLS] vector."""

    needs_pooler = True  # reads extras["pooled"]: the body must carry BERT's pooler
    reads_positions = [0]  # the pooler reads [CLS] alone, so the last layer need not compute the rest

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(cfg.hf_config.get("classifier_dropout") or cfg.hf_config.get("hidden_dropout_prob", 0.1))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(self.dropout(extras["pooled"]))  # (B, num_labels)


def classifier_dropout(cfg: ModelConfig) -> float:
    """The dropout transformers puts before a classifier: classifier_dropout, else the hidden dropout, else 0.1."""
    hf = cfg.hf_config
    for key in ("classifier_dropout", "hidden_dropout_prob", "hidden_dropout"):
        if hf.get(key) is not None:
            return float(hf[key])
    return 0.1


class TokenClassificationHead(nn.Module):
    """One label per position (NER, tagging): a linear layer on every final hidden state."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.dropout = nn.Dropout(classifier_dropout(cfg))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(self.dropout(final))  # (B, T, num_labels)


class QuestionAnsweringHead(nn.Module):
    """Extractive QA (Devlin et al. 2019, section 4.2): a start and an end score at every position.

    transformers returns them as `start_logits` and `end_logits`; here they are one tensor
    (B, T, 2) whose last axis is (start, end).
    """

    def __init__(self, cfg: ModelConfig, num_labels: int = 2) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(cfg.d_model, 2)

    def forward(self, final, extras, attention_mask):
        return self.qa_outputs(final)  # (B, T, 2)


class LastTokenClassificationHead(nn.Module):
    """Decoder classifiers (GPT-2, Llama): `score` read at the last real token, which alone has seen the whole text."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.score = nn.Linear(cfg.d_model, num_labels, bias=False)

    def forward(self, final, extras, attention_mask):
        logits = self.score(final)  # (B, T, num_labels)
        positions = torch.arange(final.shape[1], device=final.device)  # (T,)
        # the rightmost real token, found as transformers finds it, so left or right padding both work
        last = (positions * attention_mask.to(positions.dtype)).argmax(-1)  # (B,)
        return logits[torch.arange(final.shape[0], device=final.device), last]  # (B, num_labels)


@dataclass(frozen=True)
class HeadFormat:
    architecture: str                                   # HF class name written to config.json
    build: Callable[[ModelConfig, int], nn.Module]      # (cfg, num_labels) -> head
    pairs: list[tuple[str, str]]                        # (HF name, our name under `head.`)
    tied: str | None = None                             # our head parameter tied to embed.word.weight
    # base-model prefix in this task's checkpoints when it differs from the family's (LlamaForQuestionAnswering)
    body_prefix: Callable[[ModelConfig], str] | None = None
    # the pairs when a config's switches choose which weights exist (ModernBERT's optional biases); else `pairs`
    config_pairs: Callable[[ModelConfig], list[tuple[str, str]]] | None = None

    # the class name when the config says which of a task's checkpoints this is (DeiT with or without its
    # teacher head); else `architecture`
    config_architecture: Callable[[ModelConfig], str] | None = None

    def pairs_for(self, cfg: ModelConfig) -> list[tuple[str, str]]:
        """(HF name, our name under `head.`) of every weight this head has under `cfg`."""
        return self.config_pairs(cfg) if self.config_pairs is not None else self.pairs

    def architecture_for(self, cfg: ModelConfig) -> str:
        """The HF class name a checkpoint of this head under `cfg` is saved as."""
        return self.config_architecture(cfg) if self.config_architecture is not None else self.architecture


def linear_pairs(hf_name: str, ours: str) -> list[tuple[str, str]]:
    """(HF, ours) names of one Linear layer's weight and bias."""
    return [(f"{hf_name}.weight", f"{ours}.weight"), (f"{hf_name}.bias", f"{ours}.bias")]


def causal_lm_head(architecture: str, hf_name: str = "lm_head.weight", bias: bool = False) -> HeadFormat:
    """The unembedding of decoder LMs, tied to the token embedding unless the checkpoint has its own; with `bias`,
    its own bias (`lm_head.bias`, never tied)."""
    pairs = [(hf_name, "decoder.weight")] + ([(hf_name.replace(".weight", ".bias"), "decoder.bias")] if bias else [])
    return HeadFormat(architecture, lambda cfg, n: CausalLMHead(cfg, bias), pairs, tied="decoder.weight")


def token_classification_head(architecture: str, hf_name: str = "classifier") -> HeadFormat:
    """One label per position; `hf_name` is the checkpoint's name of the linear layer (Llama calls it `score`)."""
    return HeadFormat(architecture, lambda cfg, n: TokenClassificationHead(cfg, n), linear_pairs(hf_name, "classifier"))


def question_answering_head(architecture: str, **options) -> HeadFormat:
    return HeadFormat(architecture, lambda cfg, n: QuestionAnsweringHead(cfg), linear_pairs("qa_outputs", "qa_outputs"),
                      **options)


def last_token_classification_head(architecture: str) -> HeadFormat:
    return HeadFormat(architecture, lambda cfg, n: LastTokenClassificationHead(cfg, n), [("score.weight", "score.weight")])


@torch.no_grad()
def initialise_like_transformers(module: nn.Module, cfg: ModelConfig, generator: torch.Generator | None = None,
                                 keep: tuple[torch.Tensor, ...] = ()) -> None:
    """Fresh weights as transformers' `_init_weights` gives them: Linear N(0, initializer_range) with zero bias,
    LayerNorm/RMSNorm weight 1 and bias 0. Tensors in `keep` (a tied embedding) are left alone."""
    std = float(cfg.hf_config.get("initializer_range", 0.02))
    kept = {id(t) for t in keep}
    for sub in module.modules():
        for name, param in sub.named_parameters(recurse=False):
            if id(param) in kept:
                continue
            if isinstance(sub, (nn.Linear, nn.Embedding)) and name == "weight":
                param.normal_(0.0, std, generator=generator)
            elif name == "weight":  # LayerNorm, RMSNorm
                param.fill_(1.0)
            else:  # every bias, including BERT's MLM decoder bias
                param.zero_()


