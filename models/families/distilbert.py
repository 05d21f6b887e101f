"""DistilBERT (Sanh et al. 2019): a BERT body with six layers, no segment embeddings and no pooler, its own layer
names, and heads named `vocab_transform -> vocab_layer_norm -> vocab_projector` (tied) and
`pre_classifier -> ReLU -> classifier` on [CLS]."""
from __future__ import annotations

from typing import Any

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..encoder_heads import first_token_classification_head, projected_lm_head
from ..heads import question_answering_head, token_classification_head
from ..transformer import TransformerModel
from .base import Family, layer_pairs, refuse_unsupported, register, renamed_both_ways
from .bert import EncoderEmbeddings

# chunk_size_feed_forward: transformers may split the MLP over positions, which gives the same numbers
IGNORED_KEYS = ("chunk_size_feed_forward",)
# sinusoidal_pos_embds: the checkpoint stores the fixed table, which is loaded like a learned one;
# hidden_size and num_hidden_layers are DistilBertConfig's aliases of dim and n_layers
READ_KEYS = ("activation", "dim", "hidden_dim", "n_heads", "n_layers", "max_position_embeddings", "pad_token_id",
             "vocab_size", "sinusoidal_pos_embds", "hidden_size", "num_hidden_layers", "seq_classif_dropout")


def _config(hf: dict[str, Any]) -> ModelConfig:
    refuse_unsupported(hf, "DistilBERT", activation=lambda v: v in ACTIVATIONS)
    n_heads = hf["n_heads"]
    return ModelConfig(
        family="distilbert", n_layers=hf["n_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["dim"], d_head=hf["dim"] // n_heads, d_mlp=hf["hidden_dim"], vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"], norm_eps=1e-12, activation=hf.get("activation", "gelu"),
        pad_token_id=hf.get("pad_token_id", 0), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


def _build(cfg: ModelConfig) -> TransformerModel:
    embed = EncoderEmbeddings(cfg, type_vocab_size=0, position_offset=None)
    return TransformerModel(cfg, embed, norm_kind="layer", norm_first=False, gated_mlp=False,
                            uses_rotary=False, final_norm=False)


# our module -> the checkpoint's, per layer
_LAYER = {"attn.q_proj": "attention.q_lin", "attn.k_proj": "attention.k_lin", "attn.v_proj": "attention.v_lin",
          "attn.o_proj": "attention.out_lin", "ln1": "sa_layer_norm", "mlp.fc_in": "ffn.lin1",
          "mlp.fc_out": "ffn.lin2", "ln2": "output_layer_norm"}


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embeddings.word_embeddings.weight", "embed.word.weight"),
             ("embeddings.position_embeddings.weight", "embed.position.weight"),
             ("embeddings.LayerNorm.weight", "embed.norm.weight"),
             ("embeddings.LayerNorm.bias", "embed.norm.bias")]
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"transformer.layer.{i}.", f"blocks.{i}.", _LAYER)
    return pairs


_from_hf, _to_hf = renamed_both_ways(_pairs)

_HEADS = {
    # the MLM transform uses the body's activation and a fixed eps of 1e-12, as DistilBertForMaskedLM does
    "masked-lm": projected_lm_head("DistilBertForMaskedLM", "vocab_transform", "vocab_layer_norm", "vocab_projector",
                                   eps=1e-12),
    "sequence-classification": first_token_classification_head(
        "DistilBertForSequenceClassification", "relu", dense="pre_classifier", out_proj="classifier",
        dropout_key="seq_classif_dropout"),
    "token-classification": token_classification_head("DistilBertForTokenClassification"),
    "question-answering": question_answering_head("DistilBertForQuestionAnswering"),
}

register(Family(
    name="distilbert", model_types=("distilbert",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf,
    hf_prefix=lambda cfg: "distilbert.", base_architecture=lambda cfg: "DistilBertModel", heads=_HEADS,
    architectures={"DistilBertForMultipleChoice": "multiple-choice"},  # not implemented: refused by name on load
))
