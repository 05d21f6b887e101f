"""ModernBERT (Warner et al. 2024, "Smarter, Better, Faster, Longer: A Modern Bidirectional Encoder for Fast,
Memory Efficient, and Long Context Finetuning and Inference"): a pre-norm bidirectional encoder.

Token embeddings then a LayerNorm (no positions: rotary attention carries them); pre-norm blocks whose first
layer has no attention norm (the embedding norm serves); a fused `Wqkv` projection, split here into our q, k and
v and joined back on save; a GeGLU MLP whose `Wi` holds the activated half first and the gate second; a final
norm. Every `global_attn_every_n_layers`-th layer (layer % n == 0) attends globally with `global_rope_theta`;
the others see keys at most `local_attention // 2` positions away on either side, rotated by `local_rope_theta`.
`norm_bias`, `attention_bias` and `mlp_bias` switch biases off (the real checkpoints have none): a LayerNorm
without bias is our LayerNorm with its bias parameter removed, so nothing can train a bias that saving drops.

transformers' `hidden_states[-1]` for ModernBERT is the last block's output before `final_norm`; the trace keeps
the workbench's rule (the last hidden state is after the final norm, as `last_hidden_state`), and that pre-norm
state is `trace.resid_final`. Its unpadded flash-attention path gives the padded eager numbers compared here.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..heads import HeadFormat, classifier_dropout
from ..transformer import TransformerModel
from .base import Family, StateDict, refuse_unsupported, register, rename

# config keys transformers' modeling and configuration code reads, each mapped or refused below
# (tests/models/test_config_keys.py checks these lists against transformers' source)
READ_KEYS = (
    "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
    "max_position_embeddings", "norm_eps", "norm_bias", "pad_token_id", "attention_bias", "mlp_bias",
    "hidden_activation", "global_attn_every_n_layers", "local_attention", "global_rope_theta", "local_rope_theta",
    "tie_word_embeddings",
    # transformers' alias of global_rope_theta (attribute_map); a config.json "rope_theta" alone is overwritten by
    # global_rope_theta's default when transformers builds its config, so it is not read here either
    "rope_theta",
    # heads
    "classifier_pooling", "classifier_activation", "classifier_bias", "decoder_bias", "classifier_dropout",
    # the rope utilities' keys: refused unless they leave plain rotary over the whole head
    "rope_scaling", "partial_rotary_factor", "head_dim",
    "original_max_position_embeddings",  # read by scaled rope types only, and rope_scaling is refused
)
IGNORED_KEYS = (
    "initializer_cutoff_factor",  # initialisation only
    "sparse_prediction", "sparse_pred_ignore_index",  # the masked-LM head's loss with labels; logits alike without
    "reference_compile",          # torch.compile of the same modules (and transformers turns it off on CPU)
    "deterministic_flash_attn",   # flash attention's kernel choice; the eager numbers are what we compute
    "repad_logits_with_grad",     # whether flash attention's repadded logits keep a gradient; same values
)

# ModernBertConfig's defaults: a key missing from config.json means these
DEFAULTS: dict[str, Any] = dict(
    vocab_size=50368, hidden_size=768, intermediate_size=1152, num_hidden_layers=22, num_attention_heads=12,
    hidden_activation="gelu", max_position_embeddings=8192, norm_eps=1e-5, norm_bias=False, pad_token_id=50283,
    eos_token_id=50282, bos_token_id=50281, global_rope_theta=160000.0, attention_bias=False,
    global_attn_every_n_layers=3, local_attention=128, local_rope_theta=10000.0, mlp_bias=False, decoder_bias=True,
    classifier_pooling="cls", classifier_dropout=0.0, classifier_bias=False, classifier_activation="gelu",
    tie_word_embeddings=True,
)
POOLINGS = ("cls", "mean")


def _config(source: dict[str, Any]) -> ModelConfig:
    hf = {**DEFAULTS, **source}
    if hf.get("local_rope_theta") is None:  # transformers then rotates local layers by the global base
        hf["local_rope_theta"] = hf["global_rope_theta"]
    d_head = hf["hidden_size"] // hf["num_attention_heads"]
    refuse_unsupported(
        hf, "ModernBERT",
        hidden_activation=lambda v: v in ACTIVATIONS, classifier_activation=lambda v: v in ACTIVATIONS,
        classifier_pooling=lambda v: v in POOLINGS,
        global_attn_every_n_layers=lambda v: isinstance(v, int) and v >= 1,
        hidden_size=lambda v: v % hf["num_attention_heads"] == 0,  # transformers raises too
        # transformers' rotary would turn head_dim * partial_rotary_factor dims, and its attention then fails
        head_dim=lambda v: v is None or v == d_head, partial_rotary_factor=lambda v: v in (None, 1.0),
        rope_scaling=lambda v: not v or (v.get("rope_type", v.get("type")) == "default"),
    )
    every = hf["global_attn_every_n_layers"]
    types = tuple("full_attention" if layer % every == 0 else "sliding_attention"
                  for layer in range(hf["num_hidden_layers"]))
    local = "sliding_attention" in types
    return ModelConfig(
        family="modernbert", n_layers=hf["num_hidden_layers"], n_heads=hf["num_attention_heads"],
        n_kv_heads=hf["num_attention_heads"], d_model=hf["hidden_size"], d_head=d_head,
        d_mlp=hf["intermediate_size"], vocab_size=hf["vocab_size"], max_positions=hf["max_position_embeddings"],
        norm_eps=hf["norm_eps"], activation=hf["hidden_activation"], causal=False, pad_token_id=hf["pad_token_id"],
        bos_token_id=hf.get("bos_token_id"), eos_token_id=hf.get("eos_token_id"),
        tie_word_embeddings=bool(hf["tie_word_embeddings"]), rope_theta=float(hf["global_rope_theta"]),
        rope_theta_local=float(hf["local_rope_theta"]) if local else None,
        attention_bias=bool(hf["attention_bias"]), output_bias=bool(hf["attention_bias"]),
        mlp_bias=bool(hf["mlp_bias"]), layer_types=types, sliding_window=int(hf["local_attention"]) if local else None,
        pruned_heads=pruned_heads_from_hf(source, "encoder"), hf_config=dict(source),
    )


def _switch(cfg: ModelConfig, key: str) -> Any:
    """A config value as transformers reads it: config.json's, else ModernBertConfig's default."""
    return cfg.hf_config.get(key, DEFAULTS[key])


def layer_norm(cfg: ModelConfig) -> nn.LayerNorm:
    """ModernBERT's LayerNorm: a bias only with `norm_bias`."""
    return nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps, bias=bool(_switch(cfg, "norm_bias")))


# ---------------------------------------------------------------- body

class NormedTokenEmbeddings(nn.Module):
    """tok_embeddings -> LayerNorm; inputs_embeds (attribution) go through the norm too, as in transformers."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.norm = layer_norm(cfg)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, d)
        return self.norm(x)


def _build(cfg: ModelConfig) -> TransformerModel:
    model = TransformerModel(cfg, NormedTokenEmbeddings(cfg), norm_kind="layer", norm_first=True, gated_mlp=True,
                             uses_rotary=True, final_norm=True)
    for block in model.blocks:
        block.ln1, block.ln2 = layer_norm(cfg), layer_norm(cfg)
    model.blocks[0].ln1 = nn.Identity()  # the embedding norm is the first layer's attention norm
    model.final_norm = layer_norm(cfg)
    return model


def _norm_params(cfg: ModelConfig) -> tuple[str, ...]:
    return ("weight", "bias") if _switch(cfg, "norm_bias") else ("weight",)


def _linear_params(bias: bool) -> tuple[str, ...]:
    return ("weight", "bias") if bias else ("weight",)


def _renamed(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF, ours) of every body weight that is a plain rename (all but the fused Wqkv and Wi)."""
    norms, out = _norm_params(cfg), _linear_params(cfg.attention_bias)
    pairs = [("embeddings.tok_embeddings.weight", "embed.word.weight")]
    pairs += [(f"embeddings.norm.{p}", f"embed.norm.{p}") for p in norms]
    pairs += [(f"final_norm.{p}", f"final_norm.{p}") for p in norms]
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        if i > 0:
            pairs += [(f"{hf}attn_norm.{p}", f"{ours}ln1.{p}") for p in norms]
        pairs += [(f"{hf}mlp_norm.{p}", f"{ours}ln2.{p}") for p in norms]
        pairs += [(f"{hf}attn.Wo.{p}", f"{ours}attn.o_proj.{p}") for p in out]
        pairs += [(f"{hf}mlp.Wo.{p}", f"{ours}mlp.fc_out.{p}") for p in _linear_params(cfg.mlp_bias)]
    return pairs


def _fused(cfg: ModelConfig) -> list[tuple[str, list[str], list[int]]]:
    """(HF name, our names, their widths) of each fused tensor: Wqkv is [q; k; v] over the layer's heads, and Wi
    is [the half the activation reads; the gate], i.e. our mlp.gate then mlp.fc_in."""
    fused = []
    for i in range(cfg.n_layers):
        hf, ours = f"layers.{i}.", f"blocks.{i}."
        width = len(cfg.heads_in_layer(i)) * cfg.d_head
        for p in _linear_params(cfg.attention_bias):
            fused.append((f"{hf}attn.Wqkv.{p}", [f"{ours}attn.{x}_proj.{p}" for x in "qkv"], [width] * 3))
        for p in _linear_params(cfg.mlp_bias):
            fused.append((f"{hf}mlp.Wi.{p}", [f"{ours}mlp.gate.{p}", f"{ours}mlp.fc_in.{p}"], [cfg.d_mlp] * 2))
    return fused


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, _renamed(cfg))
    for hf, ours, widths in _fused(cfg):
        if hf not in sd:
            raise KeyError(hf)
        out.update(zip(ours, torch.split(sd[hf], widths, dim=0)))
    return out


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(ours, hf) for hf, ours in _renamed(cfg)])
    for hf, ours, _ in _fused(cfg):
        out[hf] = torch.cat([sd[name] for name in ours], dim=0)
    return out


# ---------------------------------------------------------------- heads

class PredictionHead(nn.Module):
    """ModernBertPredictionHead: dense (bias with `classifier_bias`) -> classifier_activation -> LayerNorm."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model, bias=bool(_switch(cfg, "classifier_bias")))
        self.act = ACTIVATIONS[_switch(cfg, "classifier_activation")]
        self.norm = layer_norm(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.act(self.dense(x)))


class MaskedLMHead(nn.Module):
    """transform -> decoder (tied to the token embedding; bias with `decoder_bias`) at every position."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.transform = PredictionHead(cfg)
        self.decoder = nn.Linear(cfg.d_model, cfg.vocab_size, bias=bool(_switch(cfg, "decoder_bias")))

    def forward(self, final, extras, attention_mask):
        return self.decoder(self.transform(final))  # (B, T, vocab)


class PooledSequenceHead(nn.Module):
    """The sentence classifier: the [CLS] state (position 0) or the mean over real tokens (`classifier_pooling`),
    then transform -> dropout -> classifier. Local layers let [CLS] see only nearby tokens, which is why
    ModernBERT offers the mean."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.pooling = _switch(cfg, "classifier_pooling")
        if self.pooling == "cls":
            self.reads_positions = [0]  # the last layer need compute [CLS] alone (attribution)
        self.transform = PredictionHead(cfg)
        self.dropout = nn.Dropout(classifier_dropout(cfg))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        if self.pooling == "cls":
            pooled = final[:, 0]  # (B, d)
        else:
            real = attention_mask.to(final.dtype)[..., None]  # (B, T, 1)
            pooled = (final * real).sum(1) / real.sum(1)  # (B, d)
        return self.classifier(self.dropout(self.transform(pooled)))  # (B, num_labels)


class PerTokenHead(nn.Module):
    """transform -> dropout -> classifier at every position: token classification, or question answering with
    two outputs (start, end) per position, (B, T, 2) as the workbench's QA heads return them."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.transform = PredictionHead(cfg)
        self.dropout = nn.Dropout(classifier_dropout(cfg))
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(self.dropout(self.transform(final)))  # (B, T, num_labels)


def _transform_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    pairs = [(f"head.dense.{p}", f"transform.dense.{p}") for p in _linear_params(_switch(cfg, "classifier_bias"))]
    return pairs + [(f"head.norm.{p}", f"transform.norm.{p}") for p in _norm_params(cfg)]


def _mlm_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    return _transform_pairs(cfg) + [(f"decoder.{p}", f"decoder.{p}")
                                    for p in _linear_params(_switch(cfg, "decoder_bias"))]


def _classifier_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    return _transform_pairs(cfg) + [("classifier.weight", "classifier.weight"), ("classifier.bias", "classifier.bias")]


HEADS = {
    "masked-lm": HeadFormat("ModernBertForMaskedLM", lambda cfg, n: MaskedLMHead(cfg), [], tied="decoder.weight",
                            config_pairs=_mlm_pairs),
    "sequence-classification": HeadFormat("ModernBertForSequenceClassification",
                                          lambda cfg, n: PooledSequenceHead(cfg, n), [], config_pairs=_classifier_pairs),
    "token-classification": HeadFormat("ModernBertForTokenClassification", lambda cfg, n: PerTokenHead(cfg, n), [],
                                       config_pairs=_classifier_pairs),
    # transformers' QA head is the token head with num_labels outputs; the workbench's QA reads (start, end)
    "question-answering": HeadFormat("ModernBertForQuestionAnswering", lambda cfg, n: PerTokenHead(cfg, 2), [],
                                     config_pairs=_classifier_pairs),
}

register(Family(
    name="modernbert", model_types=("modernbert",), config_from_hf=_config, build=_build,
    state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "model.",
    base_architecture=lambda cfg: "ModernBertModel", heads=HEADS, default_task="masked-lm",
))
