"""T5 (Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text Transformer"),
T5 v1.1 / Flan-T5 (Chung et al. 2022) and mT5 (Xue et al. 2021), which is the same code path.

A text encoder-decoder of pre-norm blocks with RMS norms that have no mean and no bias, no biases anywhere,
unscaled attention scores (the 1/sqrt(d) is folded into the initialisation), heads of width `d_kv` (not
d_model / n_heads), one token embedding shared by both stacks (`shared.weight`), and no absolute positions:
each stack adds a learned relative position bias to every self-attention layer's scores, bucketed by the
distance between query and key (bidirectional buckets in the encoder, past-only in the decoder); it is
stored in the first layer of each stack and reused by all. Cross-attention has none.

v1.0 (`feed_forward_proj` "relu"): MLP wo(relu(wi(x))), and the lm head tied to the embedding, read after
scaling the decoder output by d_model ** -0.5. v1.1, Flan and mT5 ("gated-gelu"): wo(gelu_new(wi_0(x)) * wi_1(x))
and an untied lm head without the scale.

The network is the shared `EncoderDecoder` with the core's `position_bias` module per stack, so masking, pruning
(each layer keeps the bias rows of its remaining heads) and hooks work as elsewhere; the text-to-text adapter
(models/text_to_text.py) generates and traces. Heads: ("encoder", i), ("decoder", i) and ("cross", i).
umt5 (a bias in every layer) is not this family: it opens through the bridge.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, hf_config_with_stacked_pruned_heads, stacked_pruned_heads_from_hf
from ..encoder_decoder import EncoderDecoder
from ..embeddings import TokenEmbeddings
from ..heads import causal_lm_head
from ..text_to_text import TASK, TEXT_TO_TEXT_INPUTS
from ..transformer import TransformerModel
from .base import Family, StateDict, refuse_unsupported, register, rename

MAX_POSITIONS = 512   # relative positions have no limit; T5 trained (and its tokenizer truncates) at 512
# files a T5 folder carries besides weights, config and tokenizer.json, copied as they are on save
AUX_FILES = ("generation_config.json", "spiece.model")
# the classes served; T5EncoderModel and the classifier and QA heads are not
ARCHITECTURES = ("T5ForConditionalGeneration", "T5Model", "MT5ForConditionalGeneration", "MT5Model")


# ---------------------------------------------------------------------------- parts

def relative_position_bucket(relative: torch.Tensor, bidirectional: bool, num_buckets: int,
                             max_distance: int) -> torch.Tensor:
    """Bucket of each (key - query) distance: exact for the nearest num_buckets / 2 (per direction), then
    logarithmically wider up to `max_distance`, beyond which all share the last bucket (Raffel et al. 2020, 2.1)."""
    buckets = torch.zeros_like(relative)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative > 0).long() * num_buckets  # keys after the query use the upper half
        distance = relative.abs()
    else:
        distance = (-relative).clamp(min=0)  # the decoder sees only the past: future keys count as distance 0
    exact = num_buckets // 2
    far = exact + (torch.log(distance.float() / exact) / math.log(max_distance / exact)
                   * (num_buckets - exact)).long()
    far = far.clamp(max=num_buckets - 1)
    return buckets + torch.where(distance < exact, distance, far)


class RelativePositionBias(nn.Module):
    """`module(query_length, key_length, past)` -> (1, H, T, S): the learned bias of each head for each bucket.
    With `past` (a cached decoding step) the queries are positions past .. past + T - 1."""

    def __init__(self, n_heads: int, num_buckets: int, max_distance: int, bidirectional: bool) -> None:
        super().__init__()
        self.table = nn.Embedding(num_buckets, n_heads)  # every original head: pruning never touches it
        self.num_buckets, self.max_distance, self.bidirectional = num_buckets, max_distance, bidirectional

    def forward(self, query_length: int, key_length: int, past: int) -> torch.Tensor:
        device = self.table.weight.device
        query = torch.arange(past, past + query_length, device=device)[:, None]  # (T, 1)
        key = torch.arange(key_length, device=device)[None, :]  # (1, S)
        buckets = relative_position_bucket(key - query, self.bidirectional, self.num_buckets, self.max_distance)
        return self.table(buckets).permute(2, 0, 1)[None]  # (1, H, T, S)


# ---------------------------------------------------------------------------- config

# keys transformers' T5 reads that cannot change an inference forward here: initializer_factor scales the
# initialisation only; dense_act_fn and is_gated_act are recomputed by T5Config from feed_forward_proj, as here;
# hidden_size is an alias of d_model
IGNORED_KEYS = ("initializer_factor", "dense_act_fn", "is_gated_act", "hidden_size")
READ_KEYS = ("d_ff", "d_kv", "d_model", "decoder_start_token_id", "eos_token_id", "feed_forward_proj",
             "is_encoder_decoder", "layer_norm_epsilon", "num_decoder_layers", "num_heads", "num_layers",
             "pad_token_id", "relative_attention_max_distance", "relative_attention_num_buckets",
             "tie_word_embeddings", "vocab_size")


def _activation(hf: dict[str, Any]) -> tuple[str, bool]:
    """(activation, gated) as T5Config derives them from feed_forward_proj ("relu", "gated-gelu", ...)."""
    proj = hf.get("feed_forward_proj", "relu")
    parts = proj.split("-")
    activation = "gelu_new" if proj == "gated-gelu" else parts[-1]
    return activation, parts[0] == "gated" and len(parts) == 2


def _well_formed(proj: Any) -> bool:
    parts = str(proj).split("-")
    return len(parts) == 1 or (len(parts) == 2 and parts[0] == "gated")


def _config(hf: dict[str, Any]) -> ModelConfig:
    name = "mT5" if hf.get("model_type") == "mt5" else "T5"
    refuse_unsupported(hf, name, feed_forward_proj=lambda v: _well_formed(v) and _activation({"feed_forward_proj": v})[0]
                       in ACTIVATIONS,
                       is_encoder_decoder=lambda v: v is True,
                       architectures=lambda v: all(a in ARCHITECTURES for a in v or []),
                       # transformers' T5 cannot load it either (T5Stack has no _prune_heads); ours is kept apart
                       pruned_heads=lambda v: not v)
    activation, _ = _activation(hf)
    n_heads = hf.get("num_heads", 8)
    n_decoder = hf.get("num_decoder_layers") or hf.get("num_layers", 6)
    tied = hf.get("tie_word_embeddings", True)
    d_model = hf.get("d_model", 512)
    return ModelConfig(
        family="mt5" if hf.get("model_type") == "mt5" else "t5", n_layers=n_decoder,
        n_heads=n_heads, n_kv_heads=n_heads, d_model=d_model, d_head=hf.get("d_kv", 64), d_mlp=hf.get("d_ff", 2048),
        vocab_size=hf["vocab_size"], max_positions=hf.get("n_positions") or MAX_POSITIONS,
        norm_eps=hf.get("layer_norm_epsilon", 1e-6), activation=activation, causal=True,
        pad_token_id=hf.get("pad_token_id", 0), bos_token_id=hf.get("decoder_start_token_id", hf.get("pad_token_id", 0)),
        eos_token_id=hf.get("eos_token_id", 1), tie_word_embeddings=tied, attention_bias=False, output_bias=False,
        mlp_bias=False, attention_scale=1.0,
        # the tied head reads the decoder output scaled by d_model ** -0.5: the same as dividing its logits
        logits_scale=math.sqrt(d_model) if tied else None,
        # transformers' T5 cannot load `pruned_heads` (T5Stack has no _prune_heads): every stack under our own key
        pruned_heads=stacked_pruned_heads_from_hf(hf, "decoder"),
        other_stacks={"encoder": (hf.get("num_layers", 6), n_heads), "cross": (n_decoder, n_heads)},
        hf_config=dict(hf))


def _gated(cfg: ModelConfig) -> bool:
    return _activation(cfg.hf_config)[1]




def encoder_config(cfg: ModelConfig) -> ModelConfig:
    """The encoder's one-stack view (heads keyed ("encoder", layer))."""
    hf = cfg.hf_config
    return ModelConfig(
        family=cfg.family, n_layers=hf.get("num_layers", 6), n_heads=cfg.n_heads, n_kv_heads=cfg.n_heads,
        d_model=cfg.d_model, d_head=cfg.d_head, d_mlp=cfg.d_mlp, vocab_size=cfg.vocab_size,
        max_positions=cfg.max_positions, norm_eps=cfg.norm_eps, activation=cfg.activation,
        pad_token_id=cfg.pad_token_id, eos_token_id=cfg.eos_token_id, attention_bias=False, output_bias=False,
        mlp_bias=False, attention_scale=1.0,
        pruned_heads={k: v for k, v in cfg.pruned_heads.items() if k[0] == "encoder"}, hf_config=hf)


def _bias(cfg: ModelConfig, bidirectional: bool) -> RelativePositionBias:
    hf = cfg.hf_config
    return RelativePositionBias(cfg.n_heads, hf.get("relative_attention_num_buckets", 32),
                                hf.get("relative_attention_max_distance", 128), bidirectional)


def _build(cfg: ModelConfig) -> EncoderDecoder:
    shared = TokenEmbeddings(cfg)  # one module for both stacks, so growing the vocabulary grows it once
    layout = dict(norm_kind="rms", norm_first=True, gated_mlp=_gated(cfg), uses_rotary=False, final_norm=True)
    encoder = TransformerModel(encoder_config(cfg), shared, stack="encoder", position_bias=_bias(cfg, True), **layout)
    decoder = TransformerModel(cfg, shared, stack="decoder", cross_stack="cross", position_bias=_bias(cfg, False),
                               **layout)
    return EncoderDecoder(cfg, encoder, decoder, encoder_config)


# ---------------------------------------------------------------------------- converters

def _mlp_pairs(hf: str, ours: str, gated: bool) -> list[tuple[str, str]]:
    names = {"wi_0": "gate", "wi_1": "fc_in", "wo": "fc_out"} if gated else {"wi": "fc_in", "wo": "fc_out"}
    return [(f"{hf}DenseReluDense.{theirs}.weight", f"{ours}mlp.{mine}.weight") for theirs, mine in names.items()]


def _attn_pairs(hf: str, ours: str) -> list[tuple[str, str]]:
    return [(f"{hf}{p}.weight", f"{ours}{p}_proj.weight") for p in ("q", "k", "v", "o")]


def _pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    """(HF name, our name) of every body weight but the shared embedding."""
    gated = _gated(cfg)
    pairs = []
    for stack, n_layers in (("encoder", cfg.hf_config.get("num_layers", 6)), ("decoder", cfg.n_layers)):
        pairs += [(f"{stack}.final_layer_norm.weight", f"{stack}.final_norm.weight"),
                  (f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                   f"{stack}.position_bias.table.weight")]
        for i in range(n_layers):
            h, o = f"{stack}.block.{i}.layer.", f"{stack}.blocks.{i}."
            pairs += _attn_pairs(f"{h}0.SelfAttention.", f"{o}attn.") + [(f"{h}0.layer_norm.weight", f"{o}ln1.weight")]
            mlp = 2 if stack == "decoder" else 1
            if stack == "decoder":
                pairs += _attn_pairs(f"{h}1.EncDecAttention.", f"{o}cross_attn.")
                pairs += [(f"{h}1.layer_norm.weight", f"{o}ln_cross.weight")]
            pairs += _mlp_pairs(f"{h}{mlp}.", o, gated) + [(f"{h}{mlp}.layer_norm.weight", f"{o}ln2.weight")]
    return pairs


def _from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    ours = rename(sd, _pairs(cfg))
    shared = sd["shared.weight"] if "shared.weight" in sd else sd["encoder.embed_tokens.weight"]
    ours["encoder.embed.word.weight"] = ours["decoder.embed.word.weight"] = shared
    return ours


def _to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
    out = rename(sd, [(o, h) for h, o in _pairs(cfg)])
    out["shared.weight"] = sd["decoder.embed.word.weight"]
    return out


def _family(name: str, prefix: str) -> Family:
    """T5 and mT5: one config mapping, network and converters; the records differ in the class names saved."""
    return register(Family(
        name=name, model_types=(name,), config_from_hf=_config, build=_build,
        config_to_hf=hf_config_with_stacked_pruned_heads,
        state_dict_from_hf=_from_hf, state_dict_to_hf=_to_hf, hf_prefix=lambda cfg: "",
        base_architecture=lambda cfg: f"{prefix}Model",
        heads={TASK: causal_lm_head(f"{prefix}ForConditionalGeneration", "lm_head.weight")},
        default_task=TASK, inputs=TEXT_TO_TEXT_INPUTS, extra_files=AUX_FILES))


T5 = _family("t5", "T5")
MT5 = _family("mt5", "MT5")
