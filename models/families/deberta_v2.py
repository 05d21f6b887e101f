"""DeBERTa-v2 and v3 encoders (He et al. 2021; v3: He et al. 2023), model_type "deberta-v2".

Post-norm blocks like BERT's, with disentangled attention (deberta_v2_attention.py) reading one relative embedding
table shared by every layer. Embeddings: words (embedding_size wide, projected to hidden_size when it differs),
absolute positions only with position_biased_input, token types only with type_vocab_size > 0, then LayerNorm;
padding positions are zeroed, as transformers zeroes them. DeBERTa v1 ("deberta") stays unsupported: its attention
(one fused in_proj, separate q and v biases, talking heads, p2p) is another module.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..heads import HeadFormat, classifier_dropout, linear_pairs, question_answering_head, token_classification_head
from ..inputs import TextInputs
from ..transformer import TransformerModel
from .base import Family, layer_pairs, refuse_unsupported, register, renamed_both_ways
from .deberta_v2_attention import TERMS, DisentangledAttention, DisentangledSettings, RelativePositions, ScoreTerms

# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below
READ_KEYS = (
    "hidden_act", "hidden_size", "intermediate_size", "layer_norm_eps", "max_position_embeddings",
    "num_attention_heads", "num_hidden_layers", "pad_token_id", "type_vocab_size", "vocab_size", "embedding_size",
    "attention_head_size", "position_biased_input", "relative_attention", "max_relative_positions",
    "position_buckets", "pos_att_type", "share_att_key", "norm_rel_ebd", "pooler_hidden_size", "pooler_hidden_act",
    "legacy",
    # the convolution after the first layer: refused (conv_kernel_size > 0); its act and groups matter only with it
    "conv_kernel_size", "conv_act", "conv_groups",
)
IGNORED_KEYS = ()


def _refuse(hf: dict[str, Any]) -> None:
    refuse_unsupported(
        hf, "DeBERTa-v2", hidden_act=lambda v: v in ACTIVATIONS, pooler_hidden_act=lambda v: v in ACTIVATIONS,
        # a Conv1d over the embeddings joined to the first layer's output (the xlarge v2 checkpoints): not written
        conv_kernel_size=lambda v: not v,
        # legacy=False: transformers 4.57 ties lm_predictions.lm_head.dense to the word embeddings and cannot run it
        legacy=lambda v: v is True,
        # ContextPooler feeds a hidden_size classifier, so any other width fails in transformers too
        pooler_hidden_size=lambda v: v == hf.get("hidden_size"),
    )


def _config(hf: dict[str, Any]) -> ModelConfig:
    _refuse(hf)
    n_heads = hf["num_attention_heads"]
    if hf["hidden_size"] % n_heads:
        raise ValueError(f"hidden_size {hf['hidden_size']} is not a multiple of num_attention_heads {n_heads}")
    return ModelConfig(
        family="deberta-v2", n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf.get("attention_head_size") or hf["hidden_size"] // n_heads,
        d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"], max_positions=hf.get("max_position_embeddings", 512),
        norm_eps=hf.get("layer_norm_eps", 1e-7), activation=hf.get("hidden_act", "gelu"),
        pad_token_id=hf.get("pad_token_id", 0), tie_word_embeddings=hf.get("tie_word_embeddings", True),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


def _pos_att_type(hf: dict[str, Any]) -> list[str]:
    """pos_att_type as a list; old configs write it as "c2p|p2c", which DebertaV2Config splits the same way."""
    value = hf.get("pos_att_type") or []
    return [x.strip() for x in value.lower().split("|")] if isinstance(value, str) else list(value)


def _max_relative(hf: dict[str, Any]) -> int:
    value = hf.get("max_relative_positions", -1)
    return value if value >= 1 else hf.get("max_position_embeddings", 512)


def _settings(hf: dict[str, Any]) -> DisentangledSettings:
    buckets = hf.get("position_buckets", -1)
    kinds = _pos_att_type(hf)
    return DisentangledSettings(c2p="c2p" in kinds, p2c="p2c" in kinds, relative=bool(hf.get("relative_attention")),
                                share_att_key=bool(hf.get("share_att_key")),
                                span=buckets if buckets > 0 else _max_relative(hf))


def _normed_table(hf: dict[str, Any]) -> bool:
    return "layer_norm" in [x.strip() for x in (hf.get("norm_rel_ebd") or "none").lower().split("|")]


def _embedding_size(cfg: ModelConfig) -> int:
    return cfg.hf_config.get("embedding_size") or cfg.d_model


class DebertaEmbeddings(nn.Module):
    """word (+ absolute position) (+ token type), projected to d_model if narrower, LayerNorm, padding zeroed."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hf, width = cfg.hf_config, _embedding_size(cfg)
        self.word = nn.Embedding(cfg.vocab_size, width)
        self.position = nn.Embedding(cfg.max_positions, width) if hf.get("position_biased_input", True) else None
        types = hf.get("type_vocab_size", 0)
        self.token_type = nn.Embedding(types, width) if types > 0 else None
        self.proj = nn.Linear(width, cfg.d_model, bias=False) if width != cfg.d_model else None
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, E)
        if self.position is not None:
            x = x + self.position(positions)
        if self.token_type is not None:
            x = x + self.token_type(token_type_ids if token_type_ids is not None else torch.zeros_like(positions))
        if self.proj is not None:
            x = self.proj(x)  # (B, T, d)
        return self.norm(x) * attention_mask[:, -x.shape[1]:, None].to(x.dtype)  # (B, T, d)


def _build(cfg: ModelConfig) -> TransformerModel:
    hf = cfg.hf_config
    settings = _settings(hf)
    positions = RelativePositions(cfg.d_model, settings.span, hf.get("position_buckets", -1), _max_relative(hf),
                                  _normed_table(hf), cfg.norm_eps, settings.relative)
    return TransformerModel(
        cfg, DebertaEmbeddings(cfg), norm_kind="layer", norm_first=False, gated_mlp=False, uses_rotary=False,
        final_norm=False, relative_positions=positions,
        make_attention=lambda c, key: DisentangledAttention(c.d_model, c.d_head, c.heads_in_layer(key[1], key[0]),
                                                            settings))


# our module -> the checkpoint's, per layer
_LAYER = {"attn.q_proj": "attention.self.query_proj", "attn.k_proj": "attention.self.key_proj",
          "attn.v_proj": "attention.self.value_proj", "attn.o_proj": "attention.output.dense",
          "ln1": "attention.output.LayerNorm", "mlp.fc_in": "intermediate.dense", "mlp.fc_out": "output.dense",
          "ln2": "output.LayerNorm"}


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF name, our name) of every body weight under `cfg`'s switches."""
    hf, settings = cfg.hf_config, _settings(cfg.hf_config)
    pairs = [("embeddings.word_embeddings.weight", "embed.word.weight"),
             ("embeddings.LayerNorm.weight", "embed.norm.weight"), ("embeddings.LayerNorm.bias", "embed.norm.bias")]
    if hf.get("position_biased_input", True):
        pairs.append(("embeddings.position_embeddings.weight", "embed.position.weight"))
    if hf.get("type_vocab_size", 0) > 0:
        pairs.append(("embeddings.token_type_embeddings.weight", "embed.token_type.weight"))
    if _embedding_size(cfg) != cfg.d_model:
        pairs.append(("embeddings.embed_proj.weight", "embed.proj.weight"))
    if settings.relative:
        pairs.append(("encoder.rel_embeddings.weight", "relative_positions.embeddings.weight"))
        if _normed_table(hf):
            pairs += linear_pairs("encoder.LayerNorm", "relative_positions.norm")
    layer = dict(_LAYER)
    if settings.relative and not settings.share_att_key:
        if settings.c2p:
            layer["attn.pos_key_proj"] = "attention.self.pos_key_proj"
        if settings.p2c:
            layer["attn.pos_query_proj"] = "attention.self.pos_query_proj"
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"encoder.layer.{i}.", f"blocks.{i}.", layer)
    return pairs


# ---------------------------------------------------------------- heads

class DebertaMaskedLMHead(nn.Module):
    """transformers' legacy MLM head: dense (d -> embedding_size) -> activation -> LayerNorm -> tied decoder + bias."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        width = _embedding_size(cfg)
        self.dense = nn.Linear(cfg.d_model, width)
        self.act = ACTIVATIONS[cfg.activation]
        self.norm = nn.LayerNorm(width, eps=cfg.norm_eps)
        self.decoder = nn.Linear(width, cfg.vocab_size, bias=True)

    def forward(self, final, extras, attention_mask):
        return self.decoder(self.norm(self.act(self.dense(final))))  # (B, T, vocab)


class ContextPooler(nn.Module):
    """DeBERTa's sentence vector: act(dense(h[CLS])), with pooler_hidden_act (no tanh, unlike BERT's)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.act = ACTIVATIONS[cfg.hf_config.get("pooler_hidden_act", "gelu")]

    def forward(self, final: torch.Tensor) -> torch.Tensor:
        return self.act(self.dense(final[:, 0]))  # (B, d)


class PooledDebertaClassifier(nn.Module):
    """DebertaV2ForSequenceClassification's head: ContextPooler, then a linear classifier."""

    reads_positions = [0]  # the pooler reads [CLS] alone, so the last layer need not compute the rest

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.pooler = ContextPooler(cfg)
        self.dropout = nn.Dropout(cfg.hf_config.get("cls_dropout") or classifier_dropout(cfg))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(self.dropout(self.pooler(final)))  # (B, num_labels)


_HEADS = {
    "masked-lm": HeadFormat(
        "DebertaV2ForMaskedLM", lambda cfg, n: DebertaMaskedLMHead(cfg),
        linear_pairs("cls.predictions.transform.dense", "dense") + linear_pairs("cls.predictions.transform.LayerNorm", "norm")
        + [("cls.predictions.decoder.weight", "decoder.weight"), ("cls.predictions.bias", "decoder.bias")],
        tied="decoder.weight"),
    "sequence-classification": HeadFormat(
        "DebertaV2ForSequenceClassification", lambda cfg, n: PooledDebertaClassifier(cfg, n),
        linear_pairs("pooler.dense", "pooler.dense") + linear_pairs("classifier", "classifier")),
    "token-classification": token_classification_head("DebertaV2ForTokenClassification"),
    "question-answering": question_answering_head("DebertaV2ForQuestionAnswering"),
}


# ---------------------------------------------------------------- the score terms in a trace

class DisentangledTextInputs(TextInputs):
    """Text, as for BERT; a captured trace also carries each layer's score terms in `extras["score_terms"]`
    (a ScoreTerms per layer: content, c2p, p2c, each (B, H, T, S) or None), read off the hook points."""

    def run(self, model, capture, **given):
        if capture is not True:
            return super().run(model, capture, **given)
        seen: dict[str, torch.Tensor] = {}
        names = [name for name in model.hook_points if name.endswith(tuple(f".hook_{t}_scores" for t in TERMS))]
        with model.hooks([(name, lambda x, hook: seen.__setitem__(hook, x)) for name in names]):
            trace = super().run(model, capture, **given)
        trace.extras["score_terms"] = tuple(
            ScoreTerms(**{t: seen.get(f"blocks.{i}.attn.hook_{t}_scores") for t in TERMS}) for i in range(model.n_layers))
        return trace


_FROM_HF, _TO_HF = renamed_both_ways(_pairs)

register(Family(
    name="deberta-v2", model_types=("deberta-v2",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_FROM_HF, state_dict_to_hf=_TO_HF, hf_prefix=lambda cfg: "deberta.",
    base_architecture=lambda cfg: "DebertaV2Model", heads=_HEADS, default_task="masked-lm",
    inputs=DisentangledTextInputs(),
))
