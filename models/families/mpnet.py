"""MPNet (Song et al. 2020, "MPNet: Masked and Permuted Pre-training for Language Understanding").

A post-norm BERT-shaped encoder with RoBERTa's positions (real tokens numbered from padding_idx + 1) and no
segment embedding, plus a relative position bias: one learned table of T5-style bidirectional buckets
(`encoder.relative_attention_bias`), computed once per forward and added to every layer's scores
(`network.hook_position_bias`, `trace.extras["position_bias"]`). As in transformers, the buckets are always
32 over distances up to 128 (MPNetEncoder.compute_position_bias does not pass the config's bucket count on);
`relative_attention_num_buckets` is only the table's size, so a table smaller than 32 rows is refused.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..encoder_heads import first_token_classification_head, projected_lm_head
from ..heads import Pooler, linear_pairs, question_answering_head, token_classification_head
from ..relative_position import RelativePositionBias
from ..transformer import TransformerModel
from .base import Family, layer_pairs, refuse_unsupported, register, renamed_both_ways

IGNORED_KEYS = ()
READ_KEYS = (
    "hidden_act", "hidden_size", "intermediate_size", "layer_norm_eps", "max_position_embeddings",
    "num_attention_heads", "num_hidden_layers", "relative_attention_num_buckets", "vocab_size",
)
PADDING_IDX = 1      # fixed in transformers' MPNetEmbeddings, whatever pad_token_id says
BUCKETS = 32         # what MPNetEncoder.compute_position_bias uses
MAX_DISTANCE = 128


def _mpnet_config(hf: dict[str, Any]) -> ModelConfig:
    refuse_unsupported(hf, "MPNet", hidden_act=lambda v: v in ACTIVATIONS,
                       relative_attention_num_buckets=lambda v: v >= BUCKETS,  # transformers indexes 32 rows
                       num_attention_heads=lambda v: hf["hidden_size"] % v == 0)
    n_heads = hf["num_attention_heads"]
    return ModelConfig(
        family="mpnet", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"] - PADDING_IDX - 1,
        norm_eps=hf.get("layer_norm_eps", 1e-12), activation=hf.get("hidden_act", "gelu"),
        pad_token_id=hf.get("pad_token_id", PADDING_IDX), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


class OffsetPositionEmbeddings(nn.Module):
    """word + position embeddings, then LayerNorm; positions as transformers' MPNetEmbeddings numbers them."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.position = nn.Embedding(cfg.hf_config["max_position_embeddings"], cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        if input_ids is not None:  # tokens that are not the padding id count from PADDING_IDX + 1, padding sits at it
            real = input_ids.ne(PADDING_IDX).long()  # (B, T)
            positions = torch.cumsum(real, dim=1) * real + PADDING_IDX
        else:  # embeddings alone: transformers numbers every position in turn
            positions = positions + PADDING_IDX + 1
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, d)
        return self.norm(x + self.position(positions))


def _build(cfg: ModelConfig) -> TransformerModel:
    bias = RelativePositionBias(cfg.hf_config.get("relative_attention_num_buckets", BUCKETS), cfg.n_heads,
                                BUCKETS, MAX_DISTANCE, bidirectional=True)
    return TransformerModel(cfg, OffsetPositionEmbeddings(cfg), norm_kind="layer", norm_first=False,
                            gated_mlp=False, uses_rotary=False, final_norm=False, position_bias=bias)


_MPNET_LAYER = {"attn.q_proj": "attention.attn.q", "attn.k_proj": "attention.attn.k",
                "attn.v_proj": "attention.attn.v", "attn.o_proj": "attention.attn.o", "ln1": "attention.LayerNorm",
                "mlp.fc_in": "intermediate.dense", "mlp.fc_out": "output.dense", "ln2": "output.LayerNorm"}


def _mpnet_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [("embeddings.word_embeddings.weight", "embed.word.weight"),
             ("embeddings.position_embeddings.weight", "embed.position.weight"),
             ("embeddings.LayerNorm.weight", "embed.norm.weight"), ("embeddings.LayerNorm.bias", "embed.norm.bias"),
             ("encoder.relative_attention_bias.weight", "position_bias.embedding.weight")]
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"encoder.layer.{i}.", f"blocks.{i}.", _MPNET_LAYER)
    return pairs


_POOLER = linear_pairs("pooler.dense", "pooler.dense")
_plain_from_hf, _plain_to_hf = renamed_both_ways(_mpnet_pairs)


def _mpnet_from_hf(sd, cfg):
    """The body; MPNetModel checkpoints also carry a pooler (dense + tanh on <s>), which no head here reads."""
    return {**_plain_from_hf(sd, cfg), **({ours: sd[hf] for hf, ours in _POOLER} if _POOLER[0][0] in sd else {})}


def _mpnet_to_hf(sd, cfg):
    return {**_plain_to_hf(sd, cfg), **({hf: sd[ours] for hf, ours in _POOLER} if _POOLER[0][1] in sd else {})}


_MPNET_HEADS = {
    # dense -> exact gelu (fixed in MPNetLMHead, whatever hidden_act is) -> LayerNorm -> tied decoder + lm_head.bias
    "masked-lm": projected_lm_head("MPNetForMaskedLM", dense="lm_head.dense", norm="lm_head.layer_norm",
                                   decoder="lm_head.decoder", bias="lm_head.bias", activation="gelu"),
    # MPNetClassificationHead: dense -> tanh -> out_proj on <s>, dropout hidden_dropout_prob
    "sequence-classification": first_token_classification_head("MPNetForSequenceClassification", "tanh",
                                                                dropout_key="hidden_dropout_prob"),
    "token-classification": token_classification_head("MPNetForTokenClassification"),
    "question-answering": question_answering_head("MPNetForQuestionAnswering"),
}

register(Family(
    name="mpnet", model_types=("mpnet",), config_from_hf=_mpnet_config, build=_build,
    state_dict_from_hf=_mpnet_from_hf, state_dict_to_hf=_mpnet_to_hf, hf_prefix=lambda cfg: "mpnet.",
    base_architecture=lambda cfg: "MPNetModel", heads=_MPNET_HEADS, default_task="masked-lm",
    make_pooler=lambda cfg: Pooler(cfg.d_model),
))
