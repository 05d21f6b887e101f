"""ELECTRA (Clark et al. 2020, "ELECTRA: Pre-training Text Encoders as Discriminators Rather Than Generators").

A BERT body (bert.py) whose embeddings may be narrower than the residual stream: word, position and segment
embeddings and their LayerNorm work at `embedding_size`, and `embeddings_project` maps them to `hidden_size`.
Heads, with transformers' names:
  - replaced-token-detection (ElectraForPreTraining, the discriminator): dense -> hidden_act -> dense_prediction,
    one logit per token (B, T), > 0 where the token looks replaced. transformers has no pipeline for it, so it
    serves none here: its scores are the trace's logits.
  - masked-lm (ElectraForMaskedLM, the generator): dense to embedding_size -> gelu -> LayerNorm, then
    generator_lm_head tied to the word embeddings.
  - sequence-classification: classifier.dense -> gelu -> classifier.out_proj on the first token.
  - token-classification, question-answering: one linear layer, as BERT's.
ElectraForMultipleChoice and ElectraForCausalLM (is_decoder) are not implemented: loading either is refused by name.
"""
from __future__ import annotations

from typing import Any

from ..config import ModelConfig
from ..encoder_heads import first_token_classification_head, projected_lm_head, replaced_token_head
from ..heads import question_answering_head, token_classification_head
from ..transformer import TransformerModel
from .base import Family, register
from .bert import IGNORED_KEYS as _BERT_IGNORED
from .bert import READ_KEYS as _BERT_READ
from .bert import bert_from_hf, bert_to_hf, build_encoder, encoder_config

READ_KEYS = (*_BERT_READ, "embedding_size")
# summary_*: read only by ElectraSequenceSummary, the multiple-choice head, which is not implemented (loading an
# ElectraForMultipleChoice checkpoint is refused by name)
IGNORED_KEYS = (*_BERT_IGNORED, "summary_type", "summary_use_proj", "summary_activation", "summary_proj_to_labels")


def _config(hf: dict[str, Any]) -> ModelConfig:
    return encoder_config(hf, "electra")


def _embedding_size(cfg: ModelConfig) -> int:
    return cfg.hf_config.get("embedding_size", 128)  # ElectraConfig's default, when a config.json leaves it out


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_encoder(cfg, d_embed=_embedding_size(cfg))


_HEADS = {
    "replaced-token-detection": replaced_token_head("ElectraForPreTraining"),
    "masked-lm": projected_lm_head("ElectraForMaskedLM", "generator_predictions.dense",
                                   "generator_predictions.LayerNorm", "generator_lm_head", activation="gelu",
                                   d_embed=_embedding_size),
    "sequence-classification": first_token_classification_head("ElectraForSequenceClassification", "gelu"),
    "token-classification": token_classification_head("ElectraForTokenClassification"),
    "question-answering": question_answering_head("ElectraForQuestionAnswering"),
}

register(Family(
    name="electra", model_types=("electra",), config_from_hf=_config, build=_build,
    state_dict_from_hf=bert_from_hf, state_dict_to_hf=bert_to_hf, hf_prefix=lambda cfg: "electra.",
    base_architecture=lambda cfg: "ElectraModel", heads=_HEADS,
    architectures={"ElectraForMultipleChoice": "multiple-choice"},  # not implemented: refused by name on load
))
