"""An encoder-decoder network from two shared `TransformerModel`s: Whisper now, T5, BART and Marian next.

The encoder is an ordinary one-stack model (heads keyed ("encoder", layer)); the decoder is a
causal one whose blocks also attend to the encoder's output ("decoder" for its self-attention,
"cross" for cross-attention). The task head (an unembedding) sits on the decoder. Decoding
reuses the decoder's key/value cache, in which the encoder's keys and values are kept too.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

from .config import HeadKey, ModelConfig
from .transformer import ForwardOutput, TransformerModel


@dataclass
class Seq2SeqOutput:
    encoder: ForwardOutput
    decoder: ForwardOutput
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def logits(self) -> torch.Tensor | None:
        return self.decoder.logits


class EncoderDecoder(nn.Module):
    head_path = "decoder.head"
    word_embedding_key = "decoder.embed.word.weight"
    is_encoder_decoder = True

    def __init__(self, cfg: ModelConfig, encoder: TransformerModel, decoder: TransformerModel,
                 encoder_config: Callable[[ModelConfig], ModelConfig]) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = encoder
        self.decoder = decoder
        self.encoder_config = encoder_config  # the family's view of its config as the encoder's one-stack config

    # the decoder carries what a one-stack model carries at the top: token embedding, blocks of the trace, head
    @property
    def embed(self) -> nn.Module:
        return self.decoder.embed

    @property
    def blocks(self) -> nn.ModuleList:
        return self.decoder.blocks

    @property
    def head(self) -> nn.Module | None:
        return self.decoder.head

    @property
    def pooler(self) -> None:
        return None

    def attach_head(self, head: nn.Module | None) -> None:
        self.decoder.attach_head(head)

    def attention_owner(self, key: HeadKey) -> tuple[nn.Module, str] | None:
        return self.encoder.attention_owner(key) or self.decoder.attention_owner(key)

    def set_config(self, cfg: ModelConfig) -> None:
        """After pruning: the decoder reads `cfg`, the encoder its own view of it."""
        self.cfg = self.decoder.cfg = cfg
        self.encoder.cfg = self.encoder_config(cfg)

    def encode(self, head_scales: dict | None = None, capture: bool | str = True, **encoder_inputs: Any) -> ForwardOutput:
        return self.encoder(head_scales=head_scales, capture=capture, **encoder_inputs)

    def forward(self, decoder_input_ids: torch.Tensor, decoder_attention_mask: torch.Tensor | None = None,
                head_scales: dict | None = None, capture: bool | str = True, encoder_out: ForwardOutput | None = None,
                cache: list[dict[str, torch.Tensor]] | None = None, input_features: torch.Tensor | None = None,
                input_ids: torch.Tensor | None = None, attention_mask: torch.Tensor | None = None) -> Seq2SeqOutput:
        """Teacher-forced: the encoder over its input (or `encoder_out` from before), then the decoder over
        `decoder_input_ids` (B, T); with `cache`, a decoding step that extends it."""
        if encoder_out is None:
            encoder_out = self.encode(head_scales, capture, input_features=input_features, input_ids=input_ids,
                                      attention_mask=attention_mask)
        # a signal encoder (Whisper) makes its own mask; a text encoder's is the `attention_mask` given (also with
        # `encoder_out` from before, so padded source positions stay hidden from cross-attention while decoding)
        encoder_mask = encoder_out.extras.get("attention_mask", attention_mask)
        decoder_out = self.decoder(input_ids=decoder_input_ids, attention_mask=decoder_attention_mask,
                                   head_scales=head_scales, capture=capture, cache=cache,
                                   encoder_states=encoder_out.final, encoder_mask=encoder_mask)
        return Seq2SeqOutput(encoder_out, decoder_out)
