"""Token embeddings shared by families: token only (rotary families), token + learned positions."""
from __future__ import annotations

from torch import nn

from .config import ModelConfig


class TokenEmbeddings(nn.Module):
    """Token embedding only: positions enter through rotary attention."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.word = nn.Embedding(cfg.vocab_size, cfg.d_model)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        return inputs_embeds if inputs_embeds is not None else self.word(input_ids)  # (B, T, d)


class LearnedPositionEmbeddings(TokenEmbeddings):
    """Token + learned absolute position embeddings (GPT-2, Whisper's decoder)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__(cfg)
        self.position = nn.Embedding(cfg.max_positions, cfg.d_model)

    def forward(self, input_ids, token_type_ids, positions, attention_mask, inputs_embeds):
        x = super().forward(input_ids, token_type_ids, positions, attention_mask, inputs_embeds)  # (B, T, d)
        return x + self.position(positions)
