"""BERT-type encoders: BERT (and MiniLM, which is BERT-shaped), and the parts RoBERTa, DistilBERT and ELECTRA share.

Post-norm blocks (Devlin et al. 2019): LayerNorm(x + Attention(x)), then LayerNorm(h + MLP(h)).
RoBERTa-shaped checkpoints (roberta.py), DistilBERT (distilbert.py) and ELECTRA (electra.py) reuse the
embeddings, config mapping and layer names here; they differ in position ids, widths and checkpoint names.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..heads import (BertMaskedLMHead, HeadFormat, PooledClassificationHead, Pooler, linear_pairs, question_answering_head,
                     token_classification_head)
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename


class EncoderEmbeddings(nn.Module):
    """word + position (+ segment) embeddings, then LayerNorm (+ a projection to d_model, ELECTRA)."""

    def __init__(self, cfg: ModelConfig, type_vocab_size: int, position_offset: int | None,
                 d_embed: int | None = None) -> None:
        super().__init__()
        d_embed = d_embed or cfg.d_model  # ELECTRA embeds narrower than its residual stream
        self.word = nn.Embedding(cfg.vocab_size, d_embed)
        n_positions = cfg.max_positions + (position_offset + 1 if position_offset is not None else 0)
        self.position = nn.Embedding(n_positions, d_embed)
        self.token_type = nn.Embedding(type_vocab_size, d_embed) if type_vocab_size > 0 else None
        self.norm = nn.LayerNorm(d_embed, eps=cfg.norm_eps)
        self.project = nn.Linear(d_embed, cfg.d_model) if d_embed != cfg.d_model else None
        # RoBERTa numbers real tokens from padding_idx + 1 and gives padding position padding_idx
        self.position_offset = position_offset

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, d_embed)
        if self.position_offset is not None:
            positions = torch.cumsum(attention_mask, dim=1) * attention_mask + self.position_offset
        x = x + self.position(positions)
        if self.token_type is not None:
            if token_type_ids is None or self.token_type.num_embeddings == 1:
                token_type_ids = torch.zeros_like(positions)  # RoBERTa has one segment embedding
            x = x + self.token_type(token_type_ids)
        x = self.norm(x)
        return self.project(x) if self.project is not None else x  # (B, T, d)


# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below
# (training-only keys, such as dropout, are left out: tests/models/test_config_keys.py checks the list)
# chunk_size_feed_forward: transformers may split the MLP over positions, which gives the same numbers
IGNORED_KEYS = ("chunk_size_feed_forward",)
READ_KEYS = (
    "hidden_act", "hidden_size", "intermediate_size", "layer_norm_eps", "max_position_embeddings",
    "num_attention_heads", "num_hidden_layers", "pad_token_id", "type_vocab_size", "vocab_size",
    "position_embedding_type", "is_decoder", "add_cross_attention", "classifier_dropout",
)


def encoder_config(hf: dict[str, Any], family: str, offset_positions: bool = False) -> ModelConfig:
    """A BERT-shaped config.json -> ModelConfig. `offset_positions`: RoBERTa's positions start after padding_idx,
    so the table has pad_token_id + 1 rows more than the longest input."""
    refuse_unsupported(hf, family, hidden_act=lambda v: v in ACTIVATIONS,
                       position_embedding_type=lambda v: v in (None, "absolute"),  # relative_key*: not implemented
                       is_decoder=lambda v: not v, add_cross_attention=lambda v: not v)
    n_heads = hf["num_attention_heads"]
    pad = hf.get("pad_token_id", 1 if offset_positions else 0)
    return ModelConfig(
        family=family, n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf["vocab_size"],
        max_positions=hf["max_position_embeddings"] - (pad + 1 if offset_positions else 0),
        norm_eps=hf.get("layer_norm_eps", 1e-12), activation=hf.get("hidden_act", "gelu"),
        pad_token_id=pad, tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


def build_encoder(cfg: ModelConfig, offset_positions: bool = False, d_embed: int | None = None) -> TransformerModel:
    embed = EncoderEmbeddings(cfg, cfg.hf_config.get("type_vocab_size", 2),
                              cfg.pad_token_id if offset_positions else None, d_embed)
    return TransformerModel(cfg, embed, norm_kind="layer", norm_first=False, gated_mlp=False,
                            uses_rotary=False, final_norm=False)


def make_pooler(cfg: ModelConfig) -> Pooler | None:
    """BERT's pooler, unless the config says the checkpoint was made without one."""
    return Pooler(cfg.d_model) if cfg.hf_config.get("add_pooling_layer", True) else None


# our module -> the checkpoint's, per layer
BERT_LAYER = {"attn.q_proj": "attention.self.query", "attn.k_proj": "attention.self.key",
              "attn.v_proj": "attention.self.value", "attn.o_proj": "attention.output.dense",
              "ln1": "attention.output.LayerNorm", "mlp.fc_in": "intermediate.dense", "mlp.fc_out": "output.dense",
              "ln2": "output.LayerNorm"}


def _bert_pairs(cfg: ModelConfig, has_pooler: bool, has_token_types: bool, has_project: bool = False
                ) -> list[tuple[str, str]]:
    """(HF name, our name) for every body weight of a BERT, RoBERTa or ELECTRA checkpoint."""
    pairs = [("embeddings.word_embeddings.weight", "embed.word.weight"),
             ("embeddings.position_embeddings.weight", "embed.position.weight"),
             ("embeddings.LayerNorm.weight", "embed.norm.weight"),
             ("embeddings.LayerNorm.bias", "embed.norm.bias")]
    if has_token_types:
        pairs.append(("embeddings.token_type_embeddings.weight", "embed.token_type.weight"))
    if has_project:
        pairs += linear_pairs("embeddings_project", "embed.project")
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"encoder.layer.{i}.", f"blocks.{i}.", BERT_LAYER)
    if has_pooler:
        pairs += [("pooler.dense.weight", "pooler.dense.weight"), ("pooler.dense.bias", "pooler.dense.bias")]
    return pairs


def _legacy_names(sd: StateDict) -> StateDict:
    """Old TF-era checkpoints call LayerNorm parameters gamma and beta."""
    return {k.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias"): v
            for k, v in sd.items()}


def bert_from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    sd = _legacy_names(sd)
    pairs = _bert_pairs(cfg, "pooler.dense.weight" in sd, "embeddings.token_type_embeddings.weight" in sd,
                        "embeddings_project.weight" in sd)
    return rename(sd, pairs)


def bert_to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    pairs = _bert_pairs(cfg, "pooler.dense.weight" in sd, "embed.token_type.weight" in sd,
                        "embed.project.weight" in sd)
    return rename(sd, [(ours, hf) for hf, ours in pairs])


_BERT_HEADS = {
    "masked-lm": HeadFormat(
        "BertForMaskedLM", lambda cfg, n: BertMaskedLMHead(cfg),
        [("cls.predictions.transform.dense.weight", "dense.weight"), ("cls.predictions.transform.dense.bias", "dense.bias"),
         ("cls.predictions.transform.LayerNorm.weight", "norm.weight"),
         ("cls.predictions.transform.LayerNorm.bias", "norm.bias"),
         ("cls.predictions.decoder.weight", "decoder.weight"), ("cls.predictions.bias", "decoder.bias")],
        tied="decoder.weight"),
    "sequence-classification": HeadFormat(
        "BertForSequenceClassification", lambda cfg, n: PooledClassificationHead(cfg, n),
        linear_pairs("classifier", "classifier")),
    "token-classification": token_classification_head("BertForTokenClassification"),
    "question-answering": question_answering_head("BertForQuestionAnswering"),
}

register(Family(
    name="bert", model_types=("bert",), config_from_hf=lambda hf: encoder_config(hf, "bert"), build=build_encoder,
    state_dict_from_hf=bert_from_hf, state_dict_to_hf=bert_to_hf, hf_prefix=lambda cfg: "bert.",
    base_architecture=lambda cfg: "BertModel", heads=_BERT_HEADS, default_task="masked-lm", make_pooler=make_pooler,
))
