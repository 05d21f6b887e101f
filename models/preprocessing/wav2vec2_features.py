"""Wav2Vec2's input: the raw waveform, normalised to zero mean and unit variance per example, padded.

As transformers' Wav2Vec2FeatureExtractor: (x - mean) / sqrt(var + 1e-7) over the real samples,
padding with 0 after normalising; the attention mask is returned only where the checkpoint's
`return_attention_mask` says so (models with group-norm feature encoders were trained without one).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


@dataclass
class Wav2Vec2Features:
    sampling_rate: int = 16000
    do_normalize: bool = True
    padding_value: float = 0.0
    return_attention_mask: bool = False
    config: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_folder(cls, folder: Path) -> "Wav2Vec2Features":
        path = Path(folder) / "preprocessor_config.json"
        config = json.loads(path.read_text()) if path.exists() else {}
        return cls(sampling_rate=config.get("sampling_rate", 16000), do_normalize=config.get("do_normalize", True),
                   padding_value=config.get("padding_value", 0.0),
                   return_attention_mask=config.get("return_attention_mask", False), config=config)

    def __call__(self, waveforms: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """input_values (B, N) and a sample-level mask (B, N), 1 for real samples."""
        longest = max(len(w) for w in waveforms)
        values = np.full((len(waveforms), longest), self.padding_value, dtype=np.float32)
        mask = np.zeros((len(waveforms), longest), dtype=np.int64)
        for i, wave in enumerate(waveforms):
            wave = np.asarray(wave, dtype=np.float32)
            values[i, : len(wave)] = wave
            mask[i, : len(wave)] = 1
        if self.do_normalize:
            for i, wave in enumerate(waveforms):
                # as transformers: over the real samples when a mask is returned, else over the padded row
                n = len(wave) if self.return_attention_mask else longest
                row = values[i, :n]
                values[i, :n] = (row - row.mean()) / np.sqrt(row.var() + 1e-7)
                values[i, n:] = self.padding_value
        return torch.from_numpy(values), torch.from_numpy(mask)

    def save(self, folder: Path) -> None:
        config = dict(self.config) or {"feature_extractor_type": "Wav2Vec2FeatureExtractor", "feature_size": 1}
        config.update(sampling_rate=self.sampling_rate, do_normalize=self.do_normalize,
                      padding_value=self.padding_value, return_attention_mask=self.return_attention_mask)
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
