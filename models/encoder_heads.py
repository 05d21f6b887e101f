"""Task heads of the RoBERTa-style encoders (RoBERTa, XLM-R, CamemBERT, DistilBERT, ELECTRA; MPNet reuses them).

They differ from BERT's heads in two ways: the sentence classifier reads the first token's final state through
its own dense layer (there is no pooler in the body), and the masked-LM transform may project to a narrower
embedding width before the tied decoder (ELECTRA's generator). Each head is written once, with the activation,
widths and checkpoint names as parameters; the HeadFormat factories below give transformers' names.
"""
from __future__ import annotations

import torch
from torch import nn

from typing import Callable

from .block import ACTIVATIONS
from .config import ModelConfig
from .heads import HeadFormat, classifier_dropout, linear_pairs

# the activations transformers' heads use; tanh is RoBERTa's classifier, which no block uses
HEAD_ACTIVATIONS = {**ACTIVATIONS, "tanh": torch.tanh}


class ProjectedLMHead(nn.Module):
    """dense -> activation -> LayerNorm -> decoder + bias at every position.

    RoBERTa's `lm_head` and DistilBERT's `vocab_transform`/`vocab_projector` keep the width d_model; ELECTRA's
    generator projects to its embedding width first, so the decoder tied to the word embedding fits."""

    def __init__(self, cfg: ModelConfig, activation: str, eps: float, d_embed: int | None = None) -> None:
        super().__init__()
        d_embed = d_embed or cfg.d_model
        self.dense = nn.Linear(cfg.d_model, d_embed)
        self.act = HEAD_ACTIVATIONS[activation]
        self.norm = nn.LayerNorm(d_embed, eps=eps)
        self.decoder = nn.Linear(d_embed, cfg.vocab_size, bias=True)

    def forward(self, final, extras, attention_mask):
        return self.decoder(self.norm(self.act(self.dense(final))))  # (B, T, vocab)


class FirstTokenClassificationHead(nn.Module):
    """dense -> activation -> out_proj on the first token's final state (<s> or [CLS]), no pooler in the body.

    RoBERTa uses tanh (RobertaClassificationHead), ELECTRA gelu, DistilBERT ReLU (pre_classifier -> classifier)."""

    reads_positions = [0]  # only the first position is read, so the last layer need not compute the rest

    def __init__(self, cfg: ModelConfig, num_labels: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = HEAD_ACTIVATIONS[activation]
        self.out_proj = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        x = self.dropout(final[:, 0])  # (B, d)
        x = self.dropout(self.act(self.dense(x)))  # (B, d)
        return self.out_proj(x)  # (B, num_labels)


class ReplacedTokenHead(nn.Module):
    """ELECTRA's discriminator (Clark et al. 2020): one logit per token, > 0 when the token looks replaced.

    Logits are (B, T), as transformers' ElectraForPreTraining returns them."""

    def __init__(self, cfg: ModelConfig, activation: str) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = HEAD_ACTIVATIONS[activation]
        self.dense_prediction = nn.Linear(cfg.d_model, 1)

    def forward(self, final, extras, attention_mask):
        return self.dense_prediction(self.act(self.dense(final))).squeeze(-1)  # (B, T)


# ---------------------------------------------------------------- formats: transformers' checkpoint names

def projected_lm_head(architecture: str, dense: str, norm: str, decoder: str, bias: str | None = None,
                      activation: str | None = None, eps: float | None = None,
                      d_embed: Callable[[ModelConfig], int] | None = None) -> HeadFormat:
    """A ProjectedLMHead named as in `architecture`'s checkpoints; the decoder weight is tied to the word embedding.

    `bias`: the checkpoint's name of the decoder bias when it is not `{decoder}.bias` (RoBERTa's `lm_head.bias`).
    `activation`/`eps`: fixed values, or None to read the config's hidden activation and `layer_norm_eps`.
    `d_embed`: the narrower width of the transform and the tied embedding (ELECTRA's embedding_size)."""
    def build(cfg: ModelConfig, n: int) -> ProjectedLMHead:
        return ProjectedLMHead(cfg, activation or cfg.activation, eps if eps is not None else cfg.norm_eps,
                               d_embed(cfg) if d_embed else None)
    pairs = [*linear_pairs(dense, "dense"), *linear_pairs(norm, "norm"), (f"{decoder}.weight", "decoder.weight"),
             (bias or f"{decoder}.bias", "decoder.bias")]
    return HeadFormat(architecture, build, pairs, tied="decoder.weight")


def first_token_classification_head(architecture: str, activation: str, dense: str = "classifier.dense",
                                    out_proj: str = "classifier.out_proj", dropout_key: str | None = None
                                    ) -> HeadFormat:
    """A FirstTokenClassificationHead under `architecture`'s names (RoBERTa's by default). `dropout_key`: the
    config key of its dropout when it is not transformers' classifier_dropout-else-hidden-dropout."""
    def build(cfg: ModelConfig, n: int) -> FirstTokenClassificationHead:
        rate = cfg.hf_config.get(dropout_key) if dropout_key else None
        return FirstTokenClassificationHead(cfg, n, activation, classifier_dropout(cfg) if rate is None else rate)
    return HeadFormat(architecture, build, [*linear_pairs(dense, "dense"), *linear_pairs(out_proj, "out_proj")])


def replaced_token_head(architecture: str, prefix: str = "discriminator_predictions") -> HeadFormat:
    return HeadFormat(architecture, lambda cfg, n: ReplacedTokenHead(cfg, cfg.activation),
                      [*linear_pairs(f"{prefix}.dense", "dense"),
                       *linear_pairs(f"{prefix}.dense_prediction", "dense_prediction")])
