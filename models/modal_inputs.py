"""Images and audio to network inputs, with a label per position for the trace."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .modal_family import Prepared
from .preprocessing.audio import load_audio
from .preprocessing.image import load_image

# Longest audio an encoder run accepts: a full capture stores n_layers * n_heads * T^2 weights,
# and at 50 frames per second 30 s is 1,500 frames (2.25 M weights per head).
MAX_ENCODER_SECONDS = 30.0


def _source_name(source: Any, kind: str) -> str:
    return str(source) if isinstance(source, (str, Path)) else kind


def prepare_images(model, batch: list, sampling_rate: int | None = None) -> Prepared:
    """ViT-type: [CLS] then patches in row-major order over the grid."""
    images = [load_image(image) for image in batch]
    pixel_values = model.processor(images)  # (B, 3, H, W)
    embed = model.network.embed
    rows, cols = embed.grid
    labels = ["[CLS]"] + [f"patch {r},{c}" for r in range(rows) for c in range(cols)]
    return Prepared(
        inputs={"pixel_values": pixel_values},
        tokens=[list(labels) for _ in images],
        extras={"images": images, "grid": (rows, cols), "patch_size": embed.patch_size,
                "pixel_values": pixel_values, "sources": [_source_name(s, "image") for s in batch]},
    )


def prepare_frame_audio(model, batch: list, sampling_rate: int | None = None) -> Prepared:
    """Wav2Vec2-type: one position per feature-encoder frame (20 ms in the base configuration)."""
    from .families.wav2vec2 import frame_seconds
    rate = model.processor.sampling_rate
    waves = [load_audio(a, rate, sampling_rate, max_seconds=MAX_ENCODER_SECONDS,
                        what=f"Audio file {a}" if isinstance(a, (str, Path)) else None) for a in batch]
    values, sample_mask = model.processor(waves)  # (B, N), (B, N)
    embed = model.network.embed
    hop = frame_seconds(model.config, rate)
    total = int(embed.output_lengths(torch.tensor(values.shape[1])))
    if total <= 0:
        raise_short(min(len(w) for w in waves) / rate)
    use_mask = model.processor.return_attention_mask
    frames = embed.output_lengths(sample_mask.sum(-1)) if use_mask else torch.full((len(waves),), total)
    if int(frames.min()) <= 0:
        raise_short(min(len(w) for w in waves) / rate)
    return Prepared(
        inputs={"input_values": values, "attention_mask": sample_mask if use_mask else None},
        tokens=[[f"{round(t * hop, 5):g}s" for t in range(int(n))] for n in frames],
        extras={"waveforms": waves, "sampling_rate": rate, "seconds_per_position": hop,
                "input_values": values, "sources": [_source_name(s, "audio") for s in batch]},
    )


def raise_short(seconds: float) -> None:
    from .errors import InputError
    raise InputError(f"The audio is {seconds * 1000:.0f} ms long: too short for the model's feature encoder "
                     "(it needs at least 25 ms).")
