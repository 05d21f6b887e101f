"""DeiT, data-efficient image transformers (Touvron et al. 2021, "Training data-efficient image transformers &
distillation through attention").

A ViT with a second learned token after [CLS]: the distillation token, trained to match a teacher
network's prediction. Positions cover [CLS], the distillation token and the patches (N + 2). The
encoder is ViT's (pre-norm, final LayerNorm), and so are its weight names, so this module only
switches the second token on and adds the heads. DeiTForImageClassification reads [CLS] alone;
DeiTForImageClassificationWithTeacher has a classifier on each token and averages their logits, as
the paper does at inference; both parts ride in the trace's extras (`cls_logits`, `distillation_logits`).
"""
from __future__ import annotations

from typing import Any

from torch import nn

from ..config import ModelConfig
from ..heads import HeadFormat, Pooler, linear_pairs
from ..inputs import IMAGE_INPUTS
from ..preprocessing.image import ImageProcessor
from ..transformer import TransformerModel
from .base import Family, register, rename
from .vit import READ_KEYS as VIT_READ_KEYS, ClsClassifierHead, build_patch_encoder, patch_encoder_config, patch_encoder_pairs

LEADING = {"cls_token": "[CLS]", "distillation_token": "[DIST]"}  # parameter -> token label, in sequence order
WITH_TEACHER = "DeiTForImageClassificationWithTeacher"


class TeacherClassifierHead(nn.Module):
    """DeiTForImageClassificationWithTeacher: the mean of a classifier on [CLS] and one on the distillation token."""

    def __init__(self, cfg: ModelConfig, num_labels: int) -> None:
        super().__init__()
        self.cls_classifier = nn.Linear(cfg.d_model, num_labels)
        self.distillation_classifier = nn.Linear(cfg.d_model, num_labels)

    def forward(self, final, extras, attention_mask):
        cls_logits = self.cls_classifier(final[:, 0])  # (B, num_labels)
        distillation_logits = self.distillation_classifier(final[:, 1])  # (B, num_labels)
        extras["head_outputs"] = {"cls_logits": cls_logits, "distillation_logits": distillation_logits}
        return (cls_logits + distillation_logits) / 2  # (B, num_labels)


def _with_teacher(cfg: ModelConfig) -> bool:
    return WITH_TEACHER in (cfg.hf_config.get("architectures") or [])


def _head_pairs(cfg: ModelConfig) -> list[tuple[str, str]]:
    if _with_teacher(cfg):
        return linear_pairs("cls_classifier", "cls_classifier") + \
            linear_pairs("distillation_classifier", "distillation_classifier")
    return linear_pairs("classifier", "classifier")


def _head(cfg: ModelConfig, num_labels: int) -> nn.Module:
    return TeacherClassifierHead(cfg, num_labels) if _with_teacher(cfg) else ClsClassifierHead(cfg, num_labels)


# image classification in either of DeiT's two checkpoints: the one the config's `architectures` names
CLASSIFIER = HeadFormat("DeiTForImageClassification", _head, linear_pairs("classifier", "classifier"),
                        config_pairs=_head_pairs,
                        config_architecture=lambda cfg: WITH_TEACHER if _with_teacher(cfg) else CLASSIFIER.architecture)


# config keys transformers' modeling code reads: ViT's (the same modeling code, mapped and refused there), and
# id2label, which names the labels (WorkbenchModel.labels)
IGNORED_KEYS = ("chunk_size_feed_forward",)  # transformers may split the MLP over positions: the same numbers
READ_KEYS = VIT_READ_KEYS + ("id2label",)


def _config(hf: dict[str, Any]) -> ModelConfig:
    return patch_encoder_config(hf, "deit", "DeiT", n_leading=len(LEADING))


def _build(cfg: ModelConfig) -> TransformerModel:
    return build_patch_encoder(cfg, LEADING)


def _pairs(cfg: ModelConfig, sd: dict) -> list[tuple[str, str]]:
    return patch_encoder_pairs(cfg, "pooler.dense.weight" in sd, tuple(LEADING))


DEIT = register(Family(
    name="deit", model_types=("deit",), config_from_hf=_config, build=_build,
    state_dict_from_hf=lambda sd, cfg: rename(sd, _pairs(cfg, sd)),
    state_dict_to_hf=lambda sd, cfg: rename(sd, [(o, h) for h, o in _pairs(cfg, sd)]),
    hf_prefix=lambda cfg: "deit.", base_architecture=lambda cfg: "DeiTModel",
    modality="image", inputs=IMAGE_INPUTS, default_task="image-classification", tokenizer=None,
    processor=lambda folder, cfg: ImageProcessor.from_folder(folder, default_size=cfg.hf_config.get("image_size", 224)),
    make_pooler=lambda cfg: Pooler(cfg.d_model),
    heads={"image-classification": CLASSIFIER},
    architectures={WITH_TEACHER: "image-classification"},
))
