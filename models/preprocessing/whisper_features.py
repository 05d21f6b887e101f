"""Whisper's log-mel spectrogram (Radford et al. 2022, "Robust Speech Recognition via Large-Scale Weak Supervision").

Written here with torch.stft rather than imported from transformers: transformers is a test-only
reference in this project, and the computation is a dozen lines. Steps, as WhisperFeatureExtractor:
pad or cut to 30 s; a 400-point STFT with a periodic Hann window every 160 samples (10 ms); power
spectrum without the last frame; 80 Slaney-style mel filters; log10 with a 1e-10 floor; clamp to
8 below the maximum; then (x + 4) / 4.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch


def _hz_to_mel(freq: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as librosa's htk=False)."""
    freq = np.asarray(freq, dtype=np.float64)
    mels = 3.0 * freq / 200.0
    log_region = freq >= 1000.0
    mels = np.where(log_region, 15.0 + np.log(np.maximum(freq, 1e-10) / 1000.0) * (27.0 / np.log(6.4)), mels)
    return mels


def _mel_to_hz(mels: np.ndarray) -> np.ndarray:
    mels = np.asarray(mels, dtype=np.float64)
    freq = 200.0 * mels / 3.0
    return np.where(mels >= 15.0, 1000.0 * np.exp(np.log(6.4) / 27.0 * (mels - 15.0)), freq)


def mel_filter_bank(n_freqs: int, n_mels: int, sampling_rate: int, f_min: float = 0.0,
                    f_max: float | None = None) -> np.ndarray:
    """(n_freqs, n_mels) triangular filters, area-normalised ("slaney" norm)."""
    f_max = f_max if f_max is not None else sampling_rate / 2
    fft_freqs = np.linspace(0, sampling_rate // 2, n_freqs)
    mel_points = np.linspace(_hz_to_mel(f_min), _hz_to_mel(f_max), n_mels + 2)
    filter_freqs = _mel_to_hz(mel_points)  # (n_mels + 2,)
    diff = np.diff(filter_freqs)  # (n_mels + 1,)
    slopes = filter_freqs[None, :] - fft_freqs[:, None]  # (n_freqs, n_mels + 2)
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    filters = np.maximum(0.0, np.minimum(down, up))  # (n_freqs, n_mels)
    enorm = 2.0 / (filter_freqs[2 : n_mels + 2] - filter_freqs[:n_mels])
    return filters * enorm[None, :]


@dataclass
class WhisperFeatures:
    feature_size: int = 80            # mel bins
    sampling_rate: int = 16000
    n_fft: int = 400
    hop_length: int = 160
    chunk_length: int = 30            # seconds the encoder reads
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.n_samples = self.chunk_length * self.sampling_rate
        self.mel_filters = torch.from_numpy(
            mel_filter_bank(1 + self.n_fft // 2, self.feature_size, self.sampling_rate, 0.0, 8000.0)).float()  # (F, M)

    @classmethod
    def from_folder(cls, folder: Path) -> "WhisperFeatures":
        path = Path(folder) / "preprocessor_config.json"
        config = json.loads(path.read_text()) if path.exists() else {}
        return cls(feature_size=config.get("feature_size", 80), sampling_rate=config.get("sampling_rate", 16000),
                   n_fft=config.get("n_fft", 400), hop_length=config.get("hop_length", 160),
                   chunk_length=config.get("chunk_length", 30), config=config)

    def __call__(self, waveforms: Sequence[np.ndarray]) -> torch.Tensor:
        """input_features (B, n_mels, 3000) from mono waveforms at `sampling_rate` (each at most 30 s)."""
        batch = torch.zeros(len(waveforms), self.n_samples)  # (B, N): zero padding to 30 s, as Whisper was trained
        for i, wave in enumerate(waveforms):
            wave = torch.as_tensor(np.asarray(wave, dtype=np.float32))[: self.n_samples]
            batch[i, : len(wave)] = wave
        window = torch.hann_window(self.n_fft)  # periodic, as transformers' window_function
        stft = torch.stft(batch, self.n_fft, self.hop_length, window=window, return_complex=True)  # (B, F, frames + 1)
        power = stft[..., :-1].abs() ** 2  # (B, F, frames)
        mel = self.mel_filters.T @ power  # (B, M, frames)
        log_spec = torch.clamp(mel, min=1e-10).log10()
        log_spec = torch.maximum(log_spec, log_spec.amax(dim=(1, 2), keepdim=True) - 8.0)
        return (log_spec + 4.0) / 4.0  # (B, M, frames)

    def save(self, folder: Path) -> None:
        config = dict(self.config) or {"feature_extractor_type": "WhisperFeatureExtractor", "feature_size": self.feature_size,
                                       "sampling_rate": self.sampling_rate, "n_fft": self.n_fft,
                                       "hop_length": self.hop_length, "chunk_length": self.chunk_length,
                                       "n_samples": self.n_samples, "nb_max_frames": self.n_samples // self.hop_length,
                                       "padding_value": 0.0, "return_attention_mask": False}
        (Path(folder) / "preprocessor_config.json").write_text(json.dumps(config, indent=2))
