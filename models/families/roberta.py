"""RoBERTa-shaped encoders: RoBERTa, XLM-RoBERTa and CamemBERT (Liu et al. 2019; Conneau et al. 2020; Martin et al.
2020). A BERT body (bert.py) whose positions count from padding_idx + 1, one segment embedding, no pooler under
its task heads, and RoBERTa's heads: `lm_head` (dense -> gelu -> layer_norm -> tied decoder + bias) and
`classifier` (dense -> tanh -> out_proj on <s>).

One family per model type, so a saved checkpoint names its own classes (XLMRobertaForSequenceClassification);
the three share every function here.
"""
from __future__ import annotations

from ..encoder_heads import first_token_classification_head, projected_lm_head
from ..heads import question_answering_head, token_classification_head
from .base import Family, register
from .bert import IGNORED_KEYS, READ_KEYS, bert_from_hf, bert_to_hf, build_encoder, encoder_config, make_pooler

__all__ = ["READ_KEYS", "IGNORED_KEYS", "roberta_heads"]


def roberta_heads(prefix: str) -> dict:
    """The text heads of `{prefix}For...` checkpoints (prefix "Roberta", "XLMRoberta", "Camembert")."""
    return {
        # RoBERTa's lm_head applies gelu whatever hidden_act says, at layer_norm_eps
        "masked-lm": projected_lm_head(f"{prefix}ForMaskedLM", "lm_head.dense", "lm_head.layer_norm",
                                       "lm_head.decoder", bias="lm_head.bias", activation="gelu"),
        "sequence-classification": first_token_classification_head(f"{prefix}ForSequenceClassification", "tanh"),
        "token-classification": token_classification_head(f"{prefix}ForTokenClassification"),
        "question-answering": question_answering_head(f"{prefix}ForQuestionAnswering"),
    }


def _register(model_type: str, prefix: str) -> Family:
    return register(Family(
        name=model_type, model_types=(model_type,),
        config_from_hf=lambda hf: encoder_config(hf, model_type, offset_positions=True),
        build=lambda cfg: build_encoder(cfg, offset_positions=True),
        state_dict_from_hf=bert_from_hf, state_dict_to_hf=bert_to_hf, hf_prefix=lambda cfg: "roberta.",
        base_architecture=lambda cfg: f"{prefix}Model", heads=roberta_heads(prefix), make_pooler=make_pooler,
        architectures={f"{prefix}ForMultipleChoice": "multiple-choice"},  # not implemented: refused by name on load
    ))


_register("roberta", "Roberta")
_register("xlm-roberta", "XLMRoberta")
_register("camembert", "Camembert")
