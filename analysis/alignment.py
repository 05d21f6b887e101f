"""The three attention stacks of a text encoder-decoder, and cross-attention read as an alignment.

Pure functions over a trace of `models/text_to_text.py`: no model, no UI. Cross-attention row i is the
decoder position that reads token i of the decoder sequence ([start] + target) and writes token i + 1, so
the alignment of a written token is the row before it (Bahdanau, Cho & Bengio 2015 drew attention this way).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from models.errors import HeadIndexError, InputError
from models.trace import Trace

from .attention import MEAN_OF_LAYER

STACKS = ("encoder", "decoder", "cross")   # self-attention of each side, then decoder-to-encoder


def _patterns(trace: Trace, stack: str) -> tuple[torch.Tensor, ...]:
    if stack not in STACKS:
        raise InputError(f"Unknown stack {stack!r}: one of {', '.join(STACKS)}.")
    patterns = {"encoder": trace.encoder_attentions, "decoder": trace.decoder_attentions,
                "cross": trace.cross_attentions}[stack]
    if not patterns or "source_tokens" not in trace.extras:
        raise InputError("This trace is not from a text encoder-decoder (no source tokens or cross-attention).")
    return patterns


def lengths(trace: Trace, example: int = 0) -> tuple[int, int]:
    """(source tokens, decoder tokens) of one example, without padding."""
    return len(trace.extras["source_tokens"][example]), len(trace.tokens[example])


def stack_pattern(trace: Trace, stack: str, layer: int, head: int | str = MEAN_OF_LAYER,
                  head_ids: Sequence[Sequence[int]] | None = None, example: int = 0) -> torch.Tensor:
    """One head's pattern (original head number `head`, among `head_ids[layer]` if heads were pruned) or the mean
    of a layer's heads: encoder (S, S), decoder (T, T) or cross (T, S), padding removed; rows sum to 1."""
    patterns = _patterns(trace, stack)
    if not 0 <= layer < len(patterns):
        raise HeadIndexError(f"Layer {layer} is out of range: the {stack} stack has layers 0..{len(patterns) - 1}.")
    S, T = lengths(trace, example)
    rows, cols = {"encoder": (S, S), "decoder": (T, T), "cross": (T, S)}[stack]
    pattern = patterns[layer][example, :, :rows, :cols].float()  # (H, rows, cols)
    if head == MEAN_OF_LAYER:
        if pattern.shape[0] == 0:
            raise HeadIndexError(f"{stack} layer {layer} has no heads left (all pruned); pick another layer.")
        return pattern.mean(0)
    ids = list(head_ids[layer]) if head_ids is not None else list(range(pattern.shape[0]))
    if head not in ids:
        raise HeadIndexError(f"{stack} layer {layer} has no head {head}; its heads are {ids}.")
    return pattern[ids.index(head)]


def written_tokens(trace: Trace, example: int = 0) -> list[str]:
    """The tokens the decoder wrote, one per alignment row: the decoder sequence after its start token."""
    return list(trace.tokens[example][1:])


def alignment(trace: Trace, layer: int, head: int | str = MEAN_OF_LAYER,
              head_ids: Sequence[Sequence[int]] | None = None, example: int = 0) -> torch.Tensor:
    """(written tokens, source tokens): cross-attention of the step that wrote each target token."""
    return stack_pattern(trace, "cross", layer, head, head_ids, example)[:-1]  # the last row wrote nothing kept


def strongest_sources(weights: torch.Tensor) -> list[int]:
    """For each row of an alignment, the source position with the most weight."""
    return [int(i) for i in torch.as_tensor(weights).argmax(-1)]
