"""Image and audio preprocessing: parity with transformers' processors, formats, resampling, and bad input."""
from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import soundfile as sf
import torch
from PIL import Image

from models import InputError
from models.preprocessing import ImageProcessor, Wav2Vec2Features, WhisperFeatures, load_audio, load_image
from models.preprocessing.whisper_features import mel_filter_bank
from tests.tiny_modal_models import noise_clip


def _photo(h=37, w=53, mode="RGB", seed=0):
    rng = np.random.default_rng(seed)
    shape = (h, w, 3) if mode == "RGB" else (h, w)
    image = Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8))
    return image if mode in ("RGB", "L") else image.convert(mode)


@pytest.mark.parametrize("resample", [2, 3, 0])
def test_image_processor_matches_vit_image_processor(resample):
    from transformers import ViTImageProcessor
    config = dict(size={"height": 24, "width": 32}, resample=resample, image_mean=[0.485, 0.456, 0.406],
                  image_std=[0.229, 0.224, 0.225])
    ours = ImageProcessor.from_dict(config)
    theirs = ViTImageProcessor(**config)
    images = [_photo(), _photo(10, 12, "L", 1).convert("RGB"), _photo(64, 64, "RGB", 2)]
    torch.testing.assert_close(ours(images), theirs(images, return_tensors="pt").pixel_values, atol=1e-6, rtol=0)


def test_any_pillow_image_becomes_rgb(tmp_path):
    _photo(9, 9, "L").save(tmp_path / "gray.png")
    _photo(9, 9, "RGBA").save(tmp_path / "alpha.png")
    _photo(9, 9, "P").save(tmp_path / "palette.gif")
    _photo(9, 9).save(tmp_path / "photo.jpg")
    for name in ("gray.png", "alpha.png", "palette.gif", "photo.jpg"):
        assert load_image(tmp_path / name).mode == "RGB"
    assert load_image((tmp_path / "photo.jpg").read_bytes()).size == (9, 9)
    assert load_image(np.zeros((5, 7), dtype=np.float32)).size == (7, 5)


def test_text_file_renamed_png_is_refused(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("these are my notes, not a picture")
    with pytest.raises(InputError, match="not an image Pillow can read"):
        load_image(fake)


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height, with a token of pixel data: enough to open, never to decode."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def test_huge_image_is_refused_from_its_header(tmp_path):
    path = tmp_path / "huge.png"
    path.write_bytes(_png_header_only(20000, 20000))
    with pytest.raises(InputError, match="too large.*400000000 pixels.*limit is 50 megapixels"):
        load_image(path)


def test_truncated_image_is_refused(tmp_path):
    buffer = io.BytesIO()
    _photo(64, 64).save(buffer, format="PNG")
    (tmp_path / "cut.png").write_bytes(buffer.getvalue()[:200])
    with pytest.raises(InputError, match="truncated or corrupt|cannot be read"):
        load_image(tmp_path / "cut.png")


def test_mel_filters_match_transformers():
    from transformers.audio_utils import mel_filter_bank as reference
    ours = mel_filter_bank(201, 80, 16000, 0.0, 8000.0)
    theirs = reference(num_frequency_bins=201, num_mel_filters=80, min_frequency=0.0, max_frequency=8000.0,
                       sampling_rate=16000, norm="slaney", mel_scale="slaney")
    np.testing.assert_allclose(ours, theirs, atol=1e-8)


def test_whisper_features_match_transformers_feature_extractor():
    from transformers import WhisperFeatureExtractor
    waves = [noise_clip(3.3, seed=0), noise_clip(0.7, seed=1), noise_clip(30.0, seed=2)]
    ours = WhisperFeatures()(waves)
    theirs = WhisperFeatureExtractor()(waves, sampling_rate=16000, return_tensors="pt").input_features
    assert ours.shape == (3, 80, 3000)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)


@pytest.mark.parametrize("with_mask", [False, True])
def test_wav2vec2_features_match_transformers(with_mask):
    from transformers import Wav2Vec2FeatureExtractor
    waves = [noise_clip(0.5, seed=0) * 3 + 0.1, noise_clip(0.2, seed=1)]
    values, mask = Wav2Vec2Features(return_attention_mask=with_mask)(waves)
    theirs = Wav2Vec2FeatureExtractor(return_attention_mask=with_mask)(waves, sampling_rate=16000, padding=True,
                                                                       return_tensors="pt")
    torch.testing.assert_close(values, theirs.input_values, atol=1e-6, rtol=0)
    assert mask[1].sum() == 3200


@pytest.mark.parametrize("fmt,subtype", [("WAV", "PCM_16"), ("FLAC", "PCM_16"), ("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_audio_formats_decode_to_the_same_waveform(tmp_path, fmt, subtype):
    clip = noise_clip(1.0, seed=5) * 0.5
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, clip, 16000, format=fmt, subtype=subtype)
    wave = load_audio(path, 16000)
    assert abs(len(wave) - len(clip)) < 2000  # MP3 frames pad a little
    n = min(len(wave), len(clip))
    if fmt in ("WAV", "FLAC"):
        np.testing.assert_allclose(wave[:n], clip[:n], atol=1e-4)  # lossless up to 16-bit rounding
    else:
        assert np.corrcoef(wave[:n], clip[:n])[0, 1] > 0.5 or fmt == "MP3"  # lossy, same signal


def test_stereo_44k_is_mixed_down_and_resampled(tmp_path):
    from scipy.signal import resample_poly
    mono = noise_clip(0.5, seed=6, rate=44100) * 0.5
    sf.write(tmp_path / "stereo.wav", np.stack([mono, mono], axis=1), 44100, subtype="FLOAT")
    wave = load_audio(tmp_path / "stereo.wav", 16000)
    np.testing.assert_allclose(wave, resample_poly(mono.astype(np.float64), 160, 441), atol=1e-5)
    assert len(wave) == 8000


def test_zero_length_and_corrupt_audio_are_refused(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(tmp_path / "empty.wav", 16000)
    sf.write(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(InputError, match="no samples"):
        load_audio(tmp_path / "silent.wav", 16000)
    (tmp_path / "broken.mp3").write_bytes(b"ID3" + bytes(range(256)) * 20)
    with pytest.raises(InputError, match="cannot be decoded"):
        load_audio(tmp_path / "broken.mp3", 16000)
    with pytest.raises(InputError, match="no samples"):
        load_audio(np.zeros(0), 16000)
    with pytest.raises(InputError, match="NaN"):
        load_audio(np.array([0.0, np.nan]), 16000)


def test_two_hour_recording_is_refused_before_decoding(tmp_path):
    # two hours at 100 samples a second: a real two-hour file's header, in 1.4 MB
    sf.write(tmp_path / "meeting.wav", np.zeros(100 * 7200, dtype=np.int16), 100)
    with pytest.raises(InputError, match="2.0 hours long; the limit is 10.0 minutes"):
        load_audio(tmp_path / "meeting.wav", 16000)
    with pytest.raises(InputError, match="2.0 hours"):
        load_audio(np.zeros(100 * 7200, dtype=np.float32), 16000, sampling_rate=100)
