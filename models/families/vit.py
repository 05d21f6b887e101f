"""ViT, the Vision Transformer (Dosovitskiy et al. 2021, "An Image is Worth 16x16 Words").

An image is cut into P x P patches; each patch is linearly embedded (a stride-P convolution), a
learned [CLS] vector is put in front, and learned position embeddings are added. The encoder is
pre-norm (LayerNorm before attention and before the GELU MLP) with a final LayerNorm; the image
classifier reads the [CLS] position after that norm.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..block import ACTIVATIONS
from ..config import ModelConfig, pruned_heads_from_hf
from ..errors import InputError
from ..heads import HeadFormat, Pooler, linear_pairs
from ..inputs import IMAGE_INPUTS
from ..preprocessing.image import ImageProcessor
from ..transformer import TransformerModel
from .base import Family, refuse_unsupported, register, rename


class PatchEmbeddings(nn.Module):
    """pixels (B, C, H, W) -> the learned leading tokens ([CLS]; DeiT adds its distillation token) + one vector per
    patch, plus learned positions: (B, len(leading) + N, d)."""

    def __init__(self, cfg: ModelConfig, leading: dict[str, str] | None = None) -> None:
        """`leading`: {parameter name: token label} of the learned vectors put before the patches, in order."""
        super().__init__()
        hf = cfg.hf_config
        leading = leading or {"cls_token": "[CLS]"}
        self.image_size = _pair(hf.get("image_size", 224))
        self.patch_size = _pair(hf.get("patch_size", 16))
        self.num_channels = hf.get("num_channels", 3)
        self.grid = (self.image_size[0] // self.patch_size[0], self.image_size[1] // self.patch_size[1])
        self.projection = nn.Conv2d(self.num_channels, cfg.d_model, kernel_size=self.patch_size, stride=self.patch_size)
        self.leading = tuple(leading)
        self.special_tokens = tuple(leading.values())  # labels of the positions before the first patch
        for name in self.leading:
            setattr(self, name, nn.Parameter(torch.zeros(1, 1, cfg.d_model)))
        self.position = nn.Parameter(torch.zeros(1, self.grid[0] * self.grid[1] + len(self.leading), cfg.d_model))

    def embed_signal(self, pixel_values: torch.Tensor, attention_mask: torch.Tensor | None):
        B, C, H, W = pixel_values.shape
        if (H, W) != self.image_size or C != self.num_channels:
            raise InputError(f"This model reads {self.num_channels} x {self.image_size[0]} x {self.image_size[1]} "
                             f"pixel values; got {C} x {H} x {W}. Pass images through the model's processor.")
        patches = self.projection(pixel_values.to(self.projection.weight.dtype))  # (B, d, gh, gw)
        patches = patches.flatten(2).transpose(1, 2)  # (B, N, d), row-major over the grid
        leading = [getattr(self, name).expand(B, -1, -1) for name in self.leading]  # each (B, 1, d)
        x = torch.cat([*leading, patches], dim=1) + self.position  # (B, L + N, d)
        return x, torch.ones(B, x.shape[1], dtype=torch.long, device=x.device)


def _pair(value) -> tuple[int, int]:
    return (int(value[0]), int(value[1])) if isinstance(value, (list, tuple)) else (int(value), int(value))


class ClsClassifierHead(nn.Module):
    """ViTForImageClassification: a linear layer on the [CLS] position after the final norm."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        return self.classifier(final[:, 0])  # (B, num_labels)


# config keys transformers' modeling code reads that change the arithmetic, each mapped or refused below
# chunk_size_feed_forward: transformers may split the MLP over positions, which gives the same numbers
IGNORED_KEYS = ("chunk_size_feed_forward",)
READ_KEYS = ("hidden_act", "hidden_size", "image_size", "intermediate_size", "layer_norm_eps", "num_attention_heads",
             "num_channels", "num_hidden_layers", "patch_size", "pooler_act", "pooler_output_size", "qkv_bias",
             "encoder_stride")  # encoder_stride: only ViTForMaskedImageModeling's decoder, which has no head here


def patch_encoder_config(hf: dict[str, Any], family: str, shown: str, n_leading: int = 1) -> ModelConfig:
    """The ModelConfig of a ViT-shaped encoder (ViT, DeiT) with `n_leading` learned tokens before the patches;
    `shown` names the architecture in refusals."""
    refuse_unsupported(hf, shown, hidden_act=lambda v: v in ACTIVATIONS, pooler_act=lambda v: v == "tanh",
                       pooler_output_size=lambda v: v in (None, hf.get("hidden_size")))
    n_heads = hf["num_attention_heads"]
    size, patch = _pair(hf.get("image_size", 224)), _pair(hf.get("patch_size", 16))
    return ModelConfig(
        family=family, n_layers=hf["num_hidden_layers"], n_heads=n_heads, n_kv_heads=n_heads,
        d_model=hf["hidden_size"], d_head=hf["hidden_size"] // n_heads, d_mlp=hf["intermediate_size"],
        vocab_size=0, max_positions=(size[0] // patch[0]) * (size[1] // patch[1]) + n_leading,
        norm_eps=hf.get("layer_norm_eps", 1e-12), activation=hf.get("hidden_act", "gelu"),
        attention_bias=hf.get("qkv_bias", True),
        pruned_heads=pruned_heads_from_hf(hf, "encoder"), hf_config=dict(hf),
    )


def build_patch_encoder(cfg: ModelConfig, leading: dict[str, str] | None = None) -> TransformerModel:
    """Pre-norm encoder with a final LayerNorm over patch embeddings (ViT's layout, DeiT's too)."""
    return TransformerModel(cfg, PatchEmbeddings(cfg, leading), norm_kind="layer", norm_first=True, gated_mlp=False,
                            uses_rotary=False, final_norm=True)


def patch_encoder_pairs(cfg: ModelConfig, has_pooler: bool, leading: tuple[str, ...] = ("cls_token",)
                        ) -> list[tuple[str, str]]:
    """(HF name, our name) for every weight of a ViTModel-shaped body (DeiTModel names them the same)."""
    pairs = [(f"embeddings.{name}", f"embed.{name}") for name in leading]
    pairs += [("embeddings.position_embeddings", "embed.position"),
              ("embeddings.patch_embeddings.projection.weight", "embed.projection.weight"),
              ("embeddings.patch_embeddings.projection.bias", "embed.projection.bias"),
              ("layernorm.weight", "final_norm.weight"), ("layernorm.bias", "final_norm.bias")]
    for i in range(cfg.n_layers):
        hf, ours = f"encoder.layer.{i}.", f"blocks.{i}."
        for p in ("weight", "bias"):
            if p == "weight" or cfg.attention_bias:
                pairs += [(f"{hf}attention.attention.query.{p}", f"{ours}attn.q_proj.{p}"),
                          (f"{hf}attention.attention.key.{p}", f"{ours}attn.k_proj.{p}"),
                          (f"{hf}attention.attention.value.{p}", f"{ours}attn.v_proj.{p}")]
            pairs += [(f"{hf}attention.output.dense.{p}", f"{ours}attn.o_proj.{p}"),
                      (f"{hf}layernorm_before.{p}", f"{ours}ln1.{p}"),
                      (f"{hf}layernorm_after.{p}", f"{ours}ln2.{p}"),
                      (f"{hf}intermediate.dense.{p}", f"{ours}mlp.fc_in.{p}"),
                      (f"{hf}output.dense.{p}", f"{ours}mlp.fc_out.{p}")]
    if has_pooler:
        pairs += [("pooler.dense.weight", "pooler.dense.weight"), ("pooler.dense.bias", "pooler.dense.bias")]
    return pairs


VIT = register(Family(
    name="vit", model_types=("vit",), config_from_hf=lambda hf: patch_encoder_config(hf, "vit", "ViT"),
    build=build_patch_encoder,
    state_dict_from_hf=lambda sd, cfg: rename(sd, patch_encoder_pairs(cfg, "pooler.dense.weight" in sd)),
    state_dict_to_hf=lambda sd, cfg: rename(sd, [(o, h) for h, o in patch_encoder_pairs(cfg, "pooler.dense.weight" in sd)]),
    hf_prefix=lambda cfg: "vit.", base_architecture=lambda cfg: "ViTModel",
    modality="image", inputs=IMAGE_INPUTS, default_task="image-classification", tokenizer=None,
    processor=lambda folder, cfg: ImageProcessor.from_folder(folder, default_size=cfg.hf_config.get("image_size", 224)),
    make_pooler=lambda cfg: Pooler(cfg.d_model),
    heads={"image-classification": HeadFormat("ViTForImageClassification", lambda cfg, n: ClsClassifierHead(cfg, n),
                                              linear_pairs("classifier", "classifier"))},
))
