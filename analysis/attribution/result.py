"""What an attribution returns: one `Attribution` per method, gathered in an `AttributionReport`.

Scores are per unit of the input: tokens for text (T,), pixels for images (H, W), frames for
audio (n_frames,). Positive means "pushed the target score up", negative "pushed it down";
methods that only measure magnitude (saliency, rollout) are never negative.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch

# progress(fraction done in [0, 1], what is running) - the app passes a progress bar's update
Progress = Callable[[float, str], None]


def no_progress(fraction: float, message: str) -> None:
    """The default progress callback: say nothing."""


@dataclass(frozen=True)
class Target:
    """What is being explained: one output score of the model."""
    index: int                  # class id, or vocabulary id for language models
    label: str                  # readable: the class name, or the token text
    position: int | None        # the sequence position read (LMs); None for a pooled classifier
    chosen: bool                # True when the person chose it; False for the prediction
    score: float                # the model's logit for it on the input
    probability: float          # softmax probability of it on the input


@dataclass
class Attribution:
    """One method's answer for one input and target."""
    method: str                              # key in analysis.attribution.methods.METHODS
    scores: torch.Tensor                     # per unit: (T,) tokens, (H, W) pixels, (n_frames,) audio
    raw: torch.Tensor | None = None          # full resolution before reduction: (T, d), (C, H, W), (F, frames)
    seconds: float = 0.0                     # wall time of this method
    signed: bool = True                      # False for magnitude-only methods (saliency, rollout)
    convergence_delta: float | None = None   # integrated gradients: sum(attr) - (F(x) - F(baseline))
    output_difference: float | None = None   # integrated gradients: F(x) - F(baseline)
    n_steps: int | None = None               # integrated gradients: steps of the final run
    converged: bool | None = None            # |delta| within tolerance of |F(x) - F(baseline)|
    notes: list[str] = field(default_factory=list)

    @property
    def relative_delta(self) -> float | None:
        """|delta| / |F(x) - F(baseline)|: completeness says this is 0; 5% is the tolerance here."""
        if self.convergence_delta is None or self.output_difference is None:
            return None
        return abs(self.convergence_delta) / max(abs(self.output_difference), 1e-12)


@dataclass
class AttributionReport:
    """Several methods on the same input and target, ready to show, compare and export."""
    modality: str                                  # "text", "image" or "audio"
    units: list[str]                               # token texts; for images/audio a description per unit axis
    target: Target
    results: dict[str, Attribution]                # method key -> result, in the order asked
    model_name: str = ""
    input_text: str = ""                           # the text, or a description of the image / clip
    special: list[bool] = field(default_factory=list)   # text: special tokens, kept in every baseline
    unit_seconds: float | None = None              # audio: seconds per frame, for the time axis
    extras: dict[str, object] = field(default_factory=dict)  # e.g. the image or waveform to draw under a heatmap
