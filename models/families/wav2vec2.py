"""Wav2Vec2 (Baevski et al. 2020, "wav2vec 2.0: A Framework for Self-Supervised Learning of Speech Representations").

Raw audio goes through a stack of 1-D convolutions (the feature encoder: 20 ms frames at 16 kHz
in the base configuration), a LayerNorm and a linear projection to the model width, and a grouped
convolution over time that plays the part of position embeddings. The transformer encoder is
either post-norm (the "base" layout, with a LayerNorm after the positional convolution) or
pre-norm with a final LayerNorm ("stable layer norm", the large models). Heads: CTC over the
character vocabulary (Graves et al. 2006) and utterance classification on mean-pooled frames.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..ctc_tokenizer import CTCTokenizer
from ..heads import HeadFormat, linear_pairs
from ..inputs import FRAME_AUDIO_INPUTS
from ..preprocessing.wav2vec2_features import Wav2Vec2Features
from ..transformer import TransformerModel
from .base import Family, StateDict, layer_pairs, refuse_unsupported, register, rename


class ConvLayer(nn.Module):
    """conv -> norm ("group": GroupNorm with one group per channel; "layer": LayerNorm over channels) -> GELU."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, bias: bool, norm: str | None, act: str) -> None:
        super().__init__()
        self.conv = nn.Conv1d(c_in, c_out, kernel_size=kernel, stride=stride, bias=bias)
        self.norm_kind = norm
        if norm == "group":
            self.norm = nn.GroupNorm(num_groups=c_out, num_channels=c_out, affine=True)
        elif norm == "layer":
            self.norm = nn.LayerNorm(c_out)
        else:
            self.norm = None
        self.act = ACTIVATIONS[act]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)  # (B, C, T')
        if self.norm_kind == "layer":
            x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        elif self.norm is not None:
            x = self.norm(x)
        return self.act(x)


class AudioFrameEmbeddings(nn.Module):
    """input_values (B, N) -> frames (B, T, d): feature encoder, projection, convolutional positions.

    Wav2Vec2 always norms the features before projecting them; HuBERT may not (`projection_norm`), and
    may put a BatchNorm before the positional convolution instead of weight-normalising it
    (`position_batch_norm`)."""

    def __init__(self, cfg: ModelConfig, projection_norm: bool = True, position_batch_norm: bool = False) -> None:
        super().__init__()
        hf = cfg.hf_config
        dims, kernels, strides = hf["conv_dim"], hf["conv_kernel"], hf["conv_stride"]
        norm_kind = hf.get("feat_extract_norm", "group")
        act = hf.get("feat_extract_activation", "gelu")
        self.kernels, self.strides = list(kernels), list(strides)
        self.conv_layers = nn.ModuleList(
            ConvLayer(dims[i - 1] if i > 0 else 1, dims[i], kernels[i], strides[i], hf.get("conv_bias", False),
                      ("group" if i == 0 else None) if norm_kind == "group" else "layer", act)
            for i in range(len(dims)))
        self.feature_norm = nn.LayerNorm(dims[-1], eps=cfg.norm_eps) if projection_norm else None
        self.projection = nn.Linear(dims[-1], cfg.d_model)
        k = hf.get("num_conv_pos_embeddings", 128)
        self.pos_batch_norm = nn.BatchNorm1d(cfg.d_model) if position_batch_norm else None
        self.pos_conv = nn.Conv1d(cfg.d_model, cfg.d_model, kernel_size=k, padding=k // 2,
                                  groups=hf.get("num_conv_pos_embedding_groups", 16))
        self.pos_trim = 1 if k % 2 == 0 else 0  # "same" padding for an even kernel drops the last frame
        self.pos_act = ACTIVATIONS[act]
        # base layout: LayerNorm right after the positions; stable layout: a final LayerNorm instead
        self.norm = None if hf.get("do_stable_layer_norm", False) else nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        if _has_spec_embed(hf):  # SpecAugment's mask vector: used in training only, kept so a save round-trips
            self.masked_spec_embed = nn.Parameter(torch.zeros(cfg.d_model))

    def frame_seconds(self, sampling_rate: int) -> float:
        """Seconds of audio between successive frames (the product of the convolution strides / rate)."""
        hop = 1
        for stride in self.strides:
            hop *= stride
        return hop / sampling_rate

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Frames the feature encoder makes from `lengths` samples."""
        for kernel, stride in zip(self.kernels, self.strides):
            lengths = torch.div(lengths - kernel, stride, rounding_mode="floor") + 1
        return lengths

    def embed_signal(self, input_values: torch.Tensor, attention_mask: torch.Tensor | None):
        x = input_values.to(self.projection.weight.dtype)[:, None, :]  # (B, 1, N)
        for layer in self.conv_layers:
            x = layer(x)  # (B, C, T)
        x = x.transpose(1, 2)  # (B, T, C)
        if self.feature_norm is not None:
            x = self.feature_norm(x)
        x = self.projection(x)  # (B, T, d)
        B, T, _ = x.shape
        if attention_mask is not None:
            frames = self.output_lengths(attention_mask.sum(-1))  # (B,)
            mask = (torch.arange(T, device=x.device)[None, :] < frames[:, None]).long()  # (B, T)
            x = x * mask[..., None].to(x.dtype)  # padded frames are zero before the positional convolution
        else:
            mask = torch.ones(B, T, dtype=torch.long, device=x.device)
        channels = x.transpose(1, 2)  # (B, d, T)
        if self.pos_batch_norm is not None:  # eval mode: the running statistics
            channels = self.pos_batch_norm(channels)
        positions = self.pos_conv(channels)  # (B, d, T + trim)
        if self.pos_trim:
            positions = positions[:, :, : -self.pos_trim]
        x = x + self.pos_act(positions).transpose(1, 2)  # (B, T, d)
        if self.norm is not None:
            x = self.norm(x)
        return x, mask


class CTCHead(nn.Module):
    """Wav2Vec2ForCTC: per-frame logits over the character vocabulary (blank = the pad token)."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size)

    def forward(self, final, extras, attention_mask):
        return self.lm_head(final)  # (B, T, vocab)


class AudioClassificationHead(nn.Module):
    """Wav2Vec2ForSequenceClassification: project, mean over real frames, classify."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.projector = nn.Linear(cfg.d_model, cfg.hf_config.get("classifier_proj_size", 256))
        self.classifier = nn.Linear(cfg.hf_config.get("classifier_proj_size", 256), num_labels)

    def forward(self, final, extras, attention_mask):
        h = self.projector(final)  # (B, T, p)
        real = attention_mask[..., None].to(h.dtype)  # (B, T, 1)
        pooled = (h * real).sum(1) / real.sum(1)  # (B, p)
        return self.classifier(pooled)  # (B, num_labels)


# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below
# (pretraining-only keys, codevectors and negatives, and the x-vector head's tdnn keys have no use here)
# pretraining (codevectors, negatives, losses), SpecAugment and layer drop act in training only; the x-vector
# head's tdnn and the adapters' kernel sizes belong to parts the workbench refuses or does not build
IGNORED_KEYS = ("apply_spec_augment", "mask_time_prob", "mask_time_length", "mask_time_min_masks", "mask_feature_prob",
                "mask_feature_length", "mask_feature_min_masks", "layerdrop", "ctc_loss_reduction", "ctc_zero_infinity",
                "diversity_loss_weight", "contrastive_logits_temperature", "num_negatives", "codevector_dim",
                "proj_codevector_dim", "num_codevectors_per_group", "num_codevector_groups", "tdnn_dim", "tdnn_kernel",
                "tdnn_dilation", "xvector_output_dim", "num_adapter_layers", "adapter_kernel_size", "adapter_stride")
READ_KEYS = ("conv_bias", "conv_dim", "conv_kernel", "conv_stride", "do_stable_layer_norm", "feat_extract_activation",
             "feat_extract_norm", "hidden_act", "hidden_size", "intermediate_size", "layer_norm_eps",
             "num_attention_heads", "num_conv_pos_embedding_groups", "num_conv_pos_embeddings",
             "num_feat_extract_layers", "num_hidden_layers", "pad_token_id", "vocab_size", "classifier_proj_size",
             "add_adapter", "use_weighted_layer_sum", "adapter_attn_dim", "output_hidden_size")


def frame_encoder_config(hf: dict[str, Any], family: str = "wav2vec2", shown: str = "Wav2Vec2") -> ModelConfig:
    """The ModelConfig of a Wav2Vec2-shaped audio encoder (Wav2Vec2, HuBERT); `shown` names it in refusals."""
    # adapter layers, attention adapters and a weighted layer sum change the outputs: refused, by name
    refuse_unsupported(hf, shown, add_adapter=lambda v: not v, use_weighted_layer_sum=lambda v: not v,
                       adapter_attn_dim=lambda v: v is None, hidden_act=lambda v: v in ACTIVATIONS,
                       feat_extract_activation=lambda v: v in ACTIVATIONS,
                       output_hidden_size=lambda v: v in (None, hf.get("hidden_size")))
    n_heads = hf["num_attention_heads"]
    return ModelConfig(
        family=family, n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=hf.get("vocab_size", 32), max_positions=1 << 20,  # positions come from a convolution: no table
        norm_eps=hf.get("layer_norm_eps", 1e-5), activation=hf.get("hidden_act", "gelu"),
        pad_token_id=hf.get("pad_token_id", 0),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


def build_frame_encoder(cfg: ModelConfig, **layout: bool) -> TransformerModel:
    """Post-norm ("base") or pre-norm with a final LayerNorm ("stable") encoder over audio frames; `layout` is
    AudioFrameEmbeddings' switches (projection_norm, position_batch_norm)."""
    stable = cfg.hf_config.get("do_stable_layer_norm", False)
    return TransformerModel(cfg, AudioFrameEmbeddings(cfg, **layout), norm_kind="layer", norm_first=stable, gated_mlp=False,
                            uses_rotary=False, final_norm=stable)


def _has_spec_embed(hf: dict[str, Any]) -> bool:
    return hf.get("mask_time_prob", 0.05) > 0 or hf.get("mask_feature_prob", 0.0) > 0


# our module -> the checkpoint's, per layer
_LAYER = {"attn.q_proj": "attention.q_proj", "attn.k_proj": "attention.k_proj", "attn.v_proj": "attention.v_proj",
          "attn.o_proj": "attention.out_proj", "ln1": "layer_norm", "mlp.fc_in": "feed_forward.intermediate_dense",
          "mlp.fc_out": "feed_forward.output_dense", "ln2": "final_layer_norm"}


def frame_encoder_pairs(cfg: ModelConfig, projection_norm: bool = True, position_batch_norm: bool = False
                        ) -> list[tuple[str, str]]:
    """(HF name, our name) for every Wav2Vec2Model-shaped weight (HubertModel's too) except the positional
    convolution's weight."""
    hf = cfg.hf_config
    pairs = [("masked_spec_embed", "embed.masked_spec_embed")] if _has_spec_embed(hf) else []
    for i in range(len(hf["conv_dim"])):
        pairs.append((f"feature_extractor.conv_layers.{i}.conv.weight", f"embed.conv_layers.{i}.conv.weight"))
        if hf.get("conv_bias", False):
            pairs.append((f"feature_extractor.conv_layers.{i}.conv.bias", f"embed.conv_layers.{i}.conv.bias"))
        if hf.get("feat_extract_norm", "group") == "layer" or i == 0:
            pairs += [(f"feature_extractor.conv_layers.{i}.layer_norm.{p}", f"embed.conv_layers.{i}.norm.{p}")
                      for p in ("weight", "bias")]
    for p in ("weight", "bias"):
        if projection_norm:
            pairs.append((f"feature_projection.layer_norm.{p}", f"embed.feature_norm.{p}"))
        pairs.append((f"feature_projection.projection.{p}", f"embed.projection.{p}"))
    pairs.append(("encoder.pos_conv_embed.conv.bias", "embed.pos_conv.bias"))
    if position_batch_norm:
        pairs += [(f"encoder.pos_conv_embed.batch_norm.{p}", f"embed.pos_batch_norm.{p}")
                  for p in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")]
    norm_target = "final_norm" if hf.get("do_stable_layer_norm", False) else "embed.norm"
    pairs += [(f"encoder.layer_norm.{p}", f"{norm_target}.{p}") for p in ("weight", "bias")]
    for i in range(cfg.n_layers):
        pairs += layer_pairs(f"encoder.layers.{i}.", f"blocks.{i}.", _LAYER)
    return pairs


# The positional convolution is stored weight-normalised (Salimans & Kingma 2016) along the kernel
# axis: w = g * v / ||v||. Old checkpoints name the parts weight_g / weight_v. HuBERT's batch-norm
# variant stores the plain weight.
_POS_G = ("encoder.pos_conv_embed.conv.parametrizations.weight.original0", "encoder.pos_conv_embed.conv.weight_g")
_POS_V = ("encoder.pos_conv_embed.conv.parametrizations.weight.original1", "encoder.pos_conv_embed.conv.weight_v")


def frame_encoder_converters(projection_norm: bool = True, position_batch_norm: bool = False):
    """(state_dict_from_hf, state_dict_to_hf) of a Wav2Vec2-shaped body with this embedding layout."""
    def from_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
        return _from_hf(sd, frame_encoder_pairs(cfg, projection_norm, position_batch_norm))

    def to_hf(sd: StateDict, cfg: ModelConfig) -> StateDict:
        return _to_hf(sd, frame_encoder_pairs(cfg, projection_norm, position_batch_norm), not position_batch_norm)
    return from_hf, to_hf


def _from_hf(sd: StateDict, pairs: list[tuple[str, str]]) -> StateDict:
    ours = rename(sd, pairs)
    g = next((sd[k] for k in _POS_G if k in sd), None)
    v = next((sd[k] for k in _POS_V if k in sd), None)
    if g is None or v is None:
        if "encoder.pos_conv_embed.conv.weight" not in sd:
            raise KeyError(_POS_V[0])
        ours["embed.pos_conv.weight"] = sd["encoder.pos_conv_embed.conv.weight"]
    else:
        norm = v.norm(dim=(0, 1), keepdim=True)  # (1, 1, K): one norm per kernel tap (weight_norm dim=2)
        ours["embed.pos_conv.weight"] = g * v / norm
    return ours


def _to_hf(sd: StateDict, pairs: list[tuple[str, str]], weight_norm: bool) -> StateDict:
    out = rename(sd, [(o, h) for h, o in pairs])
    w = sd["embed.pos_conv.weight"]
    if not weight_norm:
        out["encoder.pos_conv_embed.conv.weight"] = w
        return out
    out[_POS_G[0]] = w.norm(dim=(0, 1), keepdim=True)  # g = ||w||, v = w gives back w exactly
    out[_POS_V[0]] = w.clone()
    return out


_FROM_HF, _TO_HF = frame_encoder_converters()


def frame_encoder_heads(model: str) -> dict[str, HeadFormat]:
    """The CTC and audio-classification heads of a Wav2Vec2-shaped model, under transformers' class names
    (`{model}ForCTC`, `{model}ForSequenceClassification`) and weight names."""
    return {"ctc": HeadFormat(f"{model}ForCTC", lambda cfg, n: CTCHead(cfg, n), linear_pairs("lm_head", "lm_head")),
            "audio-classification": HeadFormat(
                f"{model}ForSequenceClassification", lambda cfg, n: AudioClassificationHead(cfg, n),
                linear_pairs("projector", "projector") + linear_pairs("classifier", "classifier"))}


WAV2VEC2 = register(Family(
    name="wav2vec2", model_types=("wav2vec2",), config_from_hf=lambda hf: frame_encoder_config(hf),
    build=build_frame_encoder, state_dict_from_hf=_FROM_HF, state_dict_to_hf=_TO_HF, hf_prefix=lambda cfg: "wav2vec2.",
    base_architecture=lambda cfg: "Wav2Vec2Model", modality="audio", inputs=FRAME_AUDIO_INPUTS,
    tokenizer=CTCTokenizer.from_folder, processor=lambda folder, cfg: Wav2Vec2Features.from_folder(folder),
    heads=frame_encoder_heads("Wav2Vec2"),
))
