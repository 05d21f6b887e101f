"""Audio to a mono float32 waveform at the model's rate: WAV, FLAC, OGG and MP3 files, bytes, or arrays.

libsndfile (through `soundfile`) decodes all four formats (MP3 since libsndfile 1.1), and
`scipy.signal.resample_poly` resamples with a polyphase filter. A file's length is read from its
header before it is decoded, so a two-hour recording is refused at once, not after filling memory.
"""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Union

import numpy as np
import soundfile as sf
import torch

from ..errors import InputError

# Ten minutes: longer than any clip the workbench analyses (Whisper reads 30 s at a time) and
# small enough that a full attention capture over it still fits in memory.
MAX_AUDIO_SECONDS = 600.0

AudioInput = Union[np.ndarray, torch.Tensor, str, Path, bytes, io.IOBase, dict]


def load_audio(source: AudioInput, target_rate: int, sampling_rate: int | None = None,
               max_seconds: float = MAX_AUDIO_SECONDS, what: str | None = None) -> np.ndarray:
    """(samples,) float32 mono at `target_rate`.

    Arrays are taken to be at `sampling_rate` (the model's own rate if not given, as transformers'
    pipelines assume); a dict {"array" or "raw": ..., "sampling_rate": ...} is accepted too.
    """
    what = what or (f"Audio file {source}" if isinstance(source, (str, Path)) else "The audio")
    if isinstance(source, dict):
        array = source.get("array", source.get("raw"))
        if array is None:
            raise InputError(f"{what}: an audio dict needs an 'array' (or 'raw') entry and a 'sampling_rate'.")
        return load_audio(array, target_rate, source.get("sampling_rate", sampling_rate), max_seconds, what)
    if isinstance(source, (torch.Tensor, np.ndarray, list)):
        waveform = _from_array(np.asarray(source.detach().cpu() if isinstance(source, torch.Tensor) else source), what)
        # None means the model's own rate; 0 must be refused, not read as "not given"
        rate = target_rate if sampling_rate is None else _sampling_rate(sampling_rate, what)
    elif isinstance(source, (str, Path, bytes)) or hasattr(source, "read"):
        waveform, rate = _decode(source, what, max_seconds)
    else:
        raise InputError(f"{what}: expected a file path, bytes, or an array of samples; got {type(source).__name__}.")
    if rate <= 0:
        raise InputError(f"{what}: the sampling rate must be positive; got {rate}.")
    _check_length(len(waveform), rate, max_seconds, what)
    return resample(waveform, rate, target_rate)


def _sampling_rate(rate: Any, what: str) -> int:
    """A positive whole number of samples per second (16000.0 is fine; 0, -1, 8000.5 or "16000" are not)."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float, np.integer, np.floating)):
        raise InputError(f"{what}: sampling_rate must be a whole number of samples per second, got {rate!r}.")
    if not math.isfinite(float(rate)) or float(rate) != int(rate) or rate <= 0:
        raise InputError(f"{what}: the sampling rate must be a positive whole number of samples per second "
                         f"(16000 for most speech models); got {rate!r}.")
    return int(rate)


def resample(waveform: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy), exact ratio `target_rate / rate` reduced by their gcd."""
    if rate == target_rate:
        return waveform.astype(np.float32, copy=False)
    g = math.gcd(int(rate), int(target_rate))
    from scipy.signal import resample_poly  # here, not at the top: scipy.signal costs a text-only page a second to import

    return resample_poly(waveform.astype(np.float64), target_rate // g, rate // g).astype(np.float32)


def _check_length(samples: int, rate: int, max_seconds: float, what: str) -> None:
    if samples == 0:
        raise InputError(f"{what} has no samples (zero length).")
    seconds = samples / rate
    if seconds > max_seconds:
        raise InputError(f"{what} is {_duration(seconds)} long; the limit is {_duration(max_seconds)}. "
                         "Cut out the part you want to analyse first.")


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} hours"
    if seconds >= 120:
        return f"{seconds / 60:.1f} minutes"
    return f"{seconds:.1f} s"


def _from_array(array: np.ndarray, what: str) -> np.ndarray:
    if array.dtype.kind not in "fiu":
        raise InputError(f"{what}: audio samples must be numbers; got {array.dtype}.")
    if array.ndim == 2:  # (channels, samples) or (samples, channels): average the channels
        array = array.mean(axis=0 if array.shape[0] < array.shape[1] else 1)
    if array.ndim != 1:
        raise InputError(f"{what}: expected a waveform (samples,) or (channels, samples); got shape {array.shape}.")
    if array.dtype.kind in "iu":  # integer PCM -> [-1, 1]
        array = array.astype(np.float64) / float(np.iinfo(array.dtype).max)
    if not np.isfinite(array).all():
        raise InputError(f"{what} contains NaN or infinite samples.")
    return array.astype(np.float32)


def _decode(source: Any, what: str, max_seconds: float) -> tuple[np.ndarray, int]:
    if isinstance(source, (str, Path)):
        path = Path(source)
        if not path.exists():
            raise InputError(f"Audio file {path} does not exist.")
        if path.stat().st_size == 0:
            raise InputError(f"{what} is empty (0 bytes).")
    elif isinstance(source, bytes):
        if not source:
            raise InputError(f"{what} is empty (0 bytes).")
        source = io.BytesIO(source)
    try:
        info = sf.info(source)
        if hasattr(source, "seek"):
            source.seek(0)
        _check_length(info.frames, info.samplerate, max_seconds, what)
        data, rate = sf.read(source, dtype="float32", always_2d=True)  # (samples, channels)
    except InputError:
        raise
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        raise InputError(f"{what} cannot be decoded as audio (WAV, FLAC, OGG or MP3): {error}. "
                         "The file may be corrupt or of another kind.") from None
    if data.shape[0] == 0:
        raise InputError(f"{what} has no samples (zero length).")
    if not np.isfinite(data).all():
        raise InputError(f"{what} contains NaN or infinite samples.")
    return data.mean(axis=1), int(rate)
