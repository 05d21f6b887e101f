"""What one run of a model returns: every hidden state and attention pattern, by transformers' conventions."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch

from .deferred_patterns import DeferredPatterns, materialized


@dataclass
class Trace:
    tokens: list[list[str]]                   # per example, without padding
    input_ids: torch.Tensor                   # (B, T) right-padded
    attention_mask: torch.Tensor              # (B, T) 1 real token, 0 padding
    hidden_states: tuple[torch.Tensor, ...]   # n_layers + 1 of (B, T, d); the last is after the final norm
    attentions: tuple[torch.Tensor, ...]      # n_layers of (B, H_layer, T, T); masked heads are scaled, as in transformers 4.x
    resid_final: torch.Tensor                 # (B, T, d) residual stream before the final norm (logit lens input)
    logits: torch.Tensor | None = None        # task head: (B, T, vocab) for LMs, (B, labels) for classifiers
    token_type_ids: torch.Tensor | None = None
    pooled: torch.Tensor | None = None        # (B, d) BERT pooler output, when present
    head_ids: list[list[int]] = field(default_factory=list)  # original head numbers present in each layer
    warnings: list[str] = field(default_factory=list)        # e.g. truncation
    texts: list[Any] = field(default_factory=list)
    model_name: str = ""
    modality: str = "text"
    extras: dict[str, Any] = field(default_factory=dict)     # family-specific outputs (encoder/decoder/cross attentions, ...)

    @property
    def encoder_attentions(self) -> tuple[torch.Tensor, ...]:
        """Encoder self-attention (B, H, S, S) per layer: an encoder-decoder's, or an encoder-only model's own."""
        if "encoder_attentions" in self.extras:
            return self._extra_patterns("encoder_attentions")
        return self.attentions if "cross_attentions" not in self.extras else ()

    @property
    def decoder_attentions(self) -> tuple[torch.Tensor, ...]:
        """Decoder self-attention (B, H, T, T) per layer of an encoder-decoder (== `attentions`); () otherwise."""
        return self._extra_patterns("decoder_attentions")

    @property
    def cross_attentions(self) -> tuple[torch.Tensor, ...]:
        """Decoder-to-encoder attention (B, H, T, S) per layer of an encoder-decoder; () otherwise."""
        return self._extra_patterns("cross_attentions")

    def _extra_patterns(self, key: str) -> tuple[torch.Tensor, ...]:
        """An extras entry of per-layer patterns, computed now (and kept) if it was deferred."""
        if key not in self.extras:
            return ()
        value = self.extras[key] = materialized(self.extras[key])
        return value

    @property
    def attentions_pending(self) -> bool:
        """True while some patterns are deferred and not computed yet (nothing has read them)."""
        stored = (self.__dict__.get("_attentions"), *self.extras.values())
        return any(isinstance(value, DeferredPatterns) for value in stored)

    @property
    def lengths(self) -> list[int]:
        return [int(n) for n in self.attention_mask.sum(dim=1)]

    @property
    def n_layers(self) -> int:
        return len(self.hidden_states) - 1  # not len(attentions): that would compute deferred patterns

    def example(self, index: int) -> "Trace":
        """One example with padding removed: tensors (1, n, ...) for the n real tokens."""
        n = self.lengths[index]
        pick = lambda t: t[index : index + 1, :n] if t is not None else None
        return Trace(
            tokens=[self.tokens[index]], input_ids=pick(self.input_ids), attention_mask=pick(self.attention_mask),
            hidden_states=tuple(pick(h) for h in self.hidden_states),
            attentions=tuple(a[index : index + 1, :, :n, :n] for a in self.attentions),
            resid_final=pick(self.resid_final),
            logits=(pick(self.logits) if self.logits is not None and self.logits.dim() == 3
                    else (self.logits[index : index + 1] if self.logits is not None else None)),
            token_type_ids=pick(self.token_type_ids),
            pooled=self.pooled[index : index + 1] if self.pooled is not None else None,
            head_ids=self.head_ids, warnings=self.warnings, texts=self.texts[index : index + 1],
            model_name=self.model_name, modality=self.modality,
            extras={k: _pick_example(materialized(v), index, len(self.tokens)) for k, v in self.extras.items()},
        )


def _pick_example(value: Any, index: int, batch: int) -> Any:
    """One example's share of an `extras` entry: batch-first tensors, tuples of them, or per-example lists."""
    if isinstance(value, torch.Tensor):
        return value[index : index + 1] if value.dim() > 0 and value.shape[0] == batch else value
    if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
        return tuple(_pick_example(v, index, batch) for v in value)
    if isinstance(value, tuple) and any(dataclasses.is_dataclass(v) for v in value):
        # per-layer records of batch-first tensors (a mixture-of-experts router's choices), None for other layers
        return tuple(None if v is None else dataclasses.replace(
            v, **{f.name: _pick_example(getattr(v, f.name), index, batch) for f in dataclasses.fields(v)})
            for v in value)
    if isinstance(value, list) and len(value) == batch:
        return value[index : index + 1]
    return value


class _PatternsOnRead:
    """`Trace.attentions`: stored as given; deferred patterns (models/deferred_patterns.py) are computed
    into a tuple on the first read, so a trace nobody looks at never pays for them."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.slot = "_" + name

    def __get__(self, trace: "Trace | None", owner: type | None = None):
        if trace is None:
            return self
        value = trace.__dict__[self.slot] = materialized(trace.__dict__[self.slot])
        return value

    def __set__(self, trace: "Trace", value) -> None:
        trace.__dict__[self.slot] = value


# set after the dataclass is made: the generated __init__ assigns through it, and `attentions` stays a required field
Trace.attentions = _PatternsOnRead()
Trace.attentions.__set_name__(Trace, "attentions")
