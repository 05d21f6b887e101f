"""Two towers side by side, each a shared `TransformerModel`, compared in one embedding space (CLIP).

The image tower is the main stack (heads keyed ("vision", layer)); the text tower's heads are keyed
("text", layer). Neither reads the other: the towers meet only in the head, which projects each
tower's pooled vector, normalises it, and scores every image against every text by cosine
similarity times a learned temperature.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .config import HeadKey, ModelConfig
from .transformer import ForwardOutput, TransformerModel


@dataclass
class DualOutput:
    image: ForwardOutput | None             # the image tower's states and patterns
    text: ForwardOutput | None              # the text tower's
    image_embeds: torch.Tensor | None       # (B_images, projection_dim), unit length
    text_embeds: torch.Tensor | None        # (B_texts, projection_dim), unit length
    logits_per_image: torch.Tensor | None   # (B_images, B_texts) scaled cosine similarities

    @property
    def logits(self) -> torch.Tensor | None:
        return self.logits_per_image


class ContrastiveHead(nn.Module):
    """CLIP's projections and temperature: logits = exp(logit_scale) * cos(image, text)."""

    def __init__(self, d_image: int, d_text: int, projection_dim: int, logit_scale: float) -> None:
        super().__init__()
        self.visual_projection = nn.Linear(d_image, projection_dim, bias=False)
        self.text_projection = nn.Linear(d_text, projection_dim, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(float(logit_scale)))

    def embed_images(self, pooled: torch.Tensor) -> torch.Tensor:
        return _unit(self.visual_projection(pooled))  # (B, P)

    def embed_texts(self, pooled: torch.Tensor) -> torch.Tensor:
        return _unit(self.text_projection(pooled))  # (B, P)

    def similarity(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """(B_images, B_texts); computed text-first as transformers does, so the rounding is the same."""
        per_text = torch.matmul(text_embeds, image_embeds.t()) * self.logit_scale.exp()
        return per_text.t()


def _unit(x: torch.Tensor) -> torch.Tensor:
    # the norm as transformers takes it (sum of squares in float32, then the root), for equal rounding
    return x / x.pow(2).sum(-1, keepdim=True).sqrt()


class DualEncoder(nn.Module):
    head_path = "head"
    word_embedding_key = "text.embed.word.weight"
    is_encoder_decoder = False

    def __init__(self, cfg: ModelConfig, vision: TransformerModel, text: TransformerModel,
                 text_config: Callable[[ModelConfig], ModelConfig],
                 pool_image: nn.Module, pool_text: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]) -> None:
        super().__init__()
        self.cfg = cfg
        self.vision = vision
        self.text = text
        self.text_config = text_config   # the family's view of its config as the text tower's one-stack config
        self.pool_image = pool_image     # (B, T, d) final image states -> (B, d): the [CLS] position, normed
        self.pool_text = pool_text       # (final text states, input ids) -> (B, d): the end-of-text position
        self.head: ContrastiveHead | None = None

    # the image tower is what a one-stack model's callers see: its embedding, its blocks, its patterns
    @property
    def embed(self) -> nn.Module:
        return self.vision.embed

    @property
    def blocks(self) -> nn.ModuleList:
        return self.vision.blocks

    @property
    def pooler(self) -> None:
        return None

    def attach_head(self, head: nn.Module | None) -> None:
        self.head = head

    def attention_owner(self, key: HeadKey) -> tuple[nn.Module, str] | None:
        return self.vision.attention_owner(key) or self.text.attention_owner(key)

    def set_config(self, cfg: ModelConfig) -> None:
        """After pruning: the image tower reads `cfg`, the text tower its own view of it."""
        self.cfg = self.vision.cfg = cfg
        self.text.cfg = self.text_config(cfg)

    def forward(self, pixel_values: torch.Tensor | None = None, input_ids: torch.Tensor | None = None,
                attention_mask: torch.Tensor | None = None, head_scales: dict | None = None,
                capture: bool | str = True) -> DualOutput:
        """Either tower alone, or both and their similarity; `attention_mask` is the texts' padding mask."""
        image = text = image_embeds = text_embeds = logits = None
        if pixel_values is not None:
            image = self.vision(pixel_values=pixel_values, head_scales=head_scales, capture=capture)
            image.extras["pooled"] = self.pool_image(image.final)
        if input_ids is not None:
            text = self.text(input_ids=input_ids, attention_mask=attention_mask, head_scales=head_scales,
                             capture=capture)
            text.extras["pooled"] = self.pool_text(text.final, input_ids)
        if self.head is not None:
            image_embeds = self.head.embed_images(image.extras["pooled"]) if image is not None else None
            text_embeds = self.head.embed_texts(text.extras["pooled"]) if text is not None else None
            if image_embeds is not None and text_embeds is not None:
                logits = self.head.similarity(image_embeds, text_embeds)
        return DualOutput(image, text, image_embeds, text_embeds, logits)
