"""CTranslate2 Whisper tiny.en -> Hugging Face conversion: reader, loading, numerics, speech."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import math
import re
import shutil
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from models.conversion import ctranslate2_whisper
from models.conversion.ctranslate2_reader import read_ctranslate2_model, read_ctranslate2_variables
from models.conversion.ctranslate2_whisper import (
    convert_ctranslate2_whisper,
    embedded_ctranslate2_whisper_dir,
)

SENTENCE = "the quick brown fox jumps over the lazy dog"
D_MODEL, D_FFN, N_HEADS, N_LAYERS, VOCAB, N_MELS = 384, 1536, 6, 4, 51864, 80
SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362


@pytest.fixture(scope="module")
def src_dir() -> Path:
    return embedded_ctranslate2_whisper_dir()


@pytest.fixture(scope="module")
def ct2(src_dir):
    return read_ctranslate2_model(src_dir / "model.bin")


@pytest.fixture(scope="module")
def hf_dir(src_dir, tmp_path_factory) -> Path:
    return convert_ctranslate2_whisper(src_dir, tmp_path_factory.mktemp("whisper") / "tiny.en")


@pytest.fixture(scope="module")
def loaded(hf_dir):
    from transformers import WhisperForConditionalGeneration

    model, info = WhisperForConditionalGeneration.from_pretrained(hf_dir, output_loading_info=True)
    return model.eval(), info


@pytest.fixture(scope="module")
def processor(hf_dir):
    from transformers import WhisperProcessor

    return WhisperProcessor.from_pretrained(hf_dir)


# ---------------------------------------------------------------- reader


def _expected_ct2_shapes() -> dict[str, tuple[int, ...]]:
    """Every variable of CTranslate2's WhisperSpec for tiny.en, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {
        name: ()
        for name in (
            "decoder/activation",
            "decoder/alibi",
            "decoder/alignment_heads",
            "decoder/alignment_layer",
            "decoder/num_heads",
            "decoder/pre_norm",
            "decoder/scale_embeddings",
            "decoder/start_from_zero_embedding",
            "encoder/num_heads",
        )
    }
    d, f = D_MODEL, D_FFN
    shapes |= {
        "encoder/conv1/weight": (d, N_MELS, 3),
        "encoder/conv1/bias": (d,),
        "encoder/conv2/weight": (d, d, 3),
        "encoder/conv2/bias": (d,),
        "encoder/position_encodings/encodings": (1500, d),
        "decoder/position_encodings/encodings": (448, d),
        "decoder/embeddings/weight": (VOCAB, d),
        "decoder/projection/weight": (VOCAB, d),
    }
    norm = lambda p: {f"{p}/gamma": (d,), f"{p}/beta": (d,)}  # noqa: E731
    lin = lambda p, n_out, n_in: {f"{p}/weight": (n_out, n_in), f"{p}/bias": (n_out,)}  # noqa: E731
    for side in ("encoder", "decoder"):
        shapes |= norm(f"{side}/layer_norm")
        for i in range(N_LAYERS):
            p = f"{side}/layer_{i}"
            shapes |= norm(f"{p}/self_attention/layer_norm")
            shapes |= lin(f"{p}/self_attention/linear_0", 3 * d, d)
            shapes |= lin(f"{p}/self_attention/linear_1", d, d)
            shapes |= norm(f"{p}/ffn/layer_norm")
            shapes |= lin(f"{p}/ffn/linear_0", f, d)
            shapes |= lin(f"{p}/ffn/linear_1", d, f)
            if side == "decoder":
                shapes |= norm(f"{p}/attention/layer_norm")
                shapes |= lin(f"{p}/attention/linear_0", d, d)
                shapes |= lin(f"{p}/attention/linear_1", 2 * d, d)
                shapes |= lin(f"{p}/attention/linear_2", d, d)
    return shapes


def test_reader_reads_every_variable_with_its_shape(ct2):
    assert ct2.spec_name == "WhisperSpec"
    assert ct2.version == 6
    expected = _expected_ct2_shapes()
    assert set(ct2.variables) == set(expected)
    for name, shape in expected.items():
        arr = ct2.variables[name]
        assert arr.shape == shape, name
        if shape:
            assert arr.dtype == np.float16, name
            assert np.isfinite(arr).all(), name
    # The output projection is stored once and aliased to the token embeddings.
    assert ct2.aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}
    assert int(ct2.variables["encoder/num_heads"]) == N_HEADS
    assert int(ct2.variables["decoder/num_heads"]) == N_HEADS


def _ct2_string(s: str) -> bytes:
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def _ct2_variable(name: str, arr: np.ndarray, dtype_id: int) -> bytes:
    out = _ct2_string(name) + struct.pack("<B", arr.ndim)
    out += b"".join(struct.pack("<I", n) for n in arr.shape)
    data = arr.tobytes()
    return out + struct.pack("<BI", dtype_id, len(data)) + data


def test_reader_on_a_synthetic_file(tmp_path):
    """Every dtype, a scalar, an alias; truncation is an error, not silent garbage."""
    tensors = {
        "a/f32": (np.arange(6, dtype="<f4").reshape(2, 3), 0),
        "a/i8": (np.array([-1, 2], dtype="i1"), 1),
        "a/i16": (np.array(7, dtype="<i2"), 2),
        "a/i32": (np.array([[1], [2]], dtype="<i4"), 3),
        "a/f16": (np.array([0.5, -2.0], dtype="<f2"), 4),
    }
    body = struct.pack("<I", 6) + _ct2_string("TestSpec") + struct.pack("<II", 3, len(tensors))
    body += b"".join(_ct2_variable(n, a, t) for n, (a, t) in tensors.items())
    body += struct.pack("<I", 1) + _ct2_string("b/alias") + _ct2_string("a/f32")
    path = tmp_path / "model.bin"
    path.write_bytes(body)

    model = read_ctranslate2_model(tmp_path)  # a folder works as well as the file
    assert (model.spec_name, model.spec_revision) == ("TestSpec", 3)
    for name, (arr, _) in tensors.items():
        np.testing.assert_array_equal(model.variables[name], arr)
        assert model.variables[name].dtype == arr.dtype
    np.testing.assert_array_equal(read_ctranslate2_variables(path)["b/alias"], tensors["a/f32"][0])

    path.write_bytes(body[:-20])
    with pytest.raises(ValueError):
        read_ctranslate2_model(path)


# ---------------------------------------------------------------- conversion


def test_converted_folder_loads_without_missing_or_unexpected_keys(loaded, hf_dir):
    model, info = loaded
    assert info["missing_keys"] == []
    assert info["unexpected_keys"] == []
    assert info["mismatched_keys"] == []
    assert info["error_msgs"] == []
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert next(model.parameters()).dtype == torch.float32
    assert sorted(p.name for p in hf_dir.iterdir()) == [
        "config.json",
        "generation_config.json",
        "merges.txt",
        "model.safetensors",
        "preprocessor_config.json",
        "special_tokens_map.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.json",
    ]


def test_config_and_generation_config(loaded, src_dir):
    import json

    model, _ = loaded
    c = model.config
    assert (c.d_model, c.encoder_layers, c.decoder_layers) == (D_MODEL, N_LAYERS, N_LAYERS)
    assert (c.encoder_attention_heads, c.decoder_attention_heads) == (N_HEADS, N_HEADS)
    assert (c.encoder_ffn_dim, c.decoder_ffn_dim) == (D_FFN, D_FFN)
    assert (c.vocab_size, c.num_mel_bins) == (VOCAB, N_MELS)
    assert (c.max_source_positions, c.max_target_positions) == (1500, 448)
    assert c.activation_function == "gelu" and not c.scale_embedding
    assert (c.decoder_start_token_id, c.eos_token_id, c.pad_token_id) == (SOT, EOT, EOT)

    ct2_config = json.loads((src_dir / "config.json").read_text())
    g = model.generation_config
    assert (g.decoder_start_token_id, g.eos_token_id, g.no_timestamps_token_id) == (SOT, EOT, NO_TIMESTAMPS)
    assert g.is_multilingual is False
    assert not hasattr(g, "lang_to_id")  # would make generate() run language detection
    assert g.suppress_tokens == ct2_config["suppress_ids"]
    assert g.begin_suppress_tokens == ct2_config["suppress_ids_begin"] == [220, EOT]
    assert g.alignment_heads == ct2_config["alignment_heads"]


def test_weights_are_the_ct2_weights_split_as_expected(loaded, ct2):
    model, _ = loaded
    sd = model.state_dict()
    v = ct2.variables
    d = D_MODEL

    def same(hf_name: str, ct2_array: np.ndarray) -> None:
        np.testing.assert_array_equal(sd[hf_name].numpy(), ct2_array.astype(np.float32), hf_name)

    qkv = v["encoder/layer_2/self_attention/linear_0/weight"]
    qkv_b = v["encoder/layer_2/self_attention/linear_0/bias"]
    for j, p in enumerate("qkv"):
        same(f"model.encoder.layers.2.self_attn.{p}_proj.weight", qkv[j * d : (j + 1) * d])
    same("model.encoder.layers.2.self_attn.q_proj.bias", qkv_b[:d])
    same("model.encoder.layers.2.self_attn.v_proj.bias", qkv_b[2 * d :])
    assert "model.encoder.layers.2.self_attn.k_proj.bias" not in sd
    kv = v["decoder/layer_3/attention/linear_1/weight"]
    same("model.decoder.layers.3.encoder_attn.q_proj.weight", v["decoder/layer_3/attention/linear_0/weight"])
    same("model.decoder.layers.3.encoder_attn.k_proj.weight", kv[:d])
    same("model.decoder.layers.3.encoder_attn.v_proj.weight", kv[d:])
    same("model.decoder.layers.3.encoder_attn.out_proj.weight", v["decoder/layer_3/attention/linear_2/weight"])
    same("model.decoder.embed_positions.weight", v["decoder/position_encodings/encodings"])
    same("model.encoder.embed_positions.weight", v["encoder/position_encodings/encodings"])
    same("model.encoder.conv1.weight", v["encoder/conv1/weight"])
    same("proj_out.weight", v["decoder/embeddings/weight"])
    same("model.encoder.layer_norm.weight", v["encoder/layer_norm/gamma"])

    # Encoder positions are Whisper's sinusoids (stored in float16); decoder ones are learned.
    from transformers.models.whisper.modeling_whisper import sinusoids

    enc_pos = sd["model.encoder.embed_positions.weight"]
    assert torch.allclose(enc_pos, sinusoids(1500, d), atol=1e-3)
    assert not torch.allclose(sd["model.decoder.embed_positions.weight"], sinusoids(448, d), atol=0.1)


def test_tokenizers_and_processor_load(hf_dir, processor):
    from transformers import WhisperFeatureExtractor, WhisperTokenizer, WhisperTokenizerFast

    fast = WhisperTokenizerFast.from_pretrained(hf_dir)
    slow = WhisperTokenizer.from_pretrained(hf_dir)
    assert isinstance(processor.tokenizer, WhisperTokenizerFast)
    text = "The quick brown fox jumps over the lazy dog."
    ids = fast(text).input_ids
    assert ids[:2] == [SOT, NO_TIMESTAMPS] and ids[-1] == EOT
    assert slow(text).input_ids == ids
    assert fast.decode(ids, skip_special_tokens=True) == text
    assert fast.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>", "<|notimestamps|>"]) == [
        EOT,
        SOT,
        NO_TIMESTAMPS,
    ]

    fe = WhisperFeatureExtractor.from_pretrained(hf_dir)
    assert (fe.feature_size, fe.sampling_rate, fe.n_fft, fe.hop_length, fe.chunk_length) == (
        N_MELS,
        16000,
        400,
        160,
        30,
    )
    assert processor.feature_extractor(np.zeros(16000, np.float32), sampling_rate=16000).input_features[
        0
    ].shape == (N_MELS, 3000)


def test_interrupted_conversion_leaves_nothing(src_dir, tmp_path, monkeypatch, hf_dir):
    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    # Fail at the very last step, after the weights were written.
    monkeypatch.setattr(ctranslate2_whisper, "_write_tokenizer_files", boom)
    out = tmp_path / "tiny.en"
    with pytest.raises(KeyboardInterrupt):
        convert_ctranslate2_whisper(src_dir, out)
    assert list(tmp_path.iterdir()) == []

    with pytest.raises(FileExistsError):
        convert_ctranslate2_whisper(src_dir, hf_dir)


def test_conversion_fills_an_existing_empty_folder(src_dir, tmp_path):
    """models.embedded hands the converter an empty scratch folder it created."""
    out = tmp_path / "scratch"
    out.mkdir()
    assert convert_ctranslate2_whisper(src_dir, out) == out
    assert (out / "model.safetensors").is_file() and (out / "tokenizer_config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scratch"]


# ---------------------------------------------------------------- numerics


def _ct2_reference_encoder(v: dict[str, np.ndarray], mel: np.ndarray) -> np.ndarray:
    """Whisper's encoder in numpy, straight from the CTranslate2 variables (fused q|k|v).

    Independent of the name mapping, so it checks the split, the ordering and the scaling.
    """
    from scipy.special import erf

    g = lambda name: v[name].astype(np.float64)  # noqa: E731

    def gelu(x):
        return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))

    def conv1d(x, w, b, stride):  # x (C_in, T), w (C_out, C_in, 3), padding 1
        xp = np.pad(x, ((0, 0), (1, 1)))
        t_out = (x.shape[1] + 2 - 3) // stride + 1
        cols = np.stack([xp[:, k : k + stride * t_out : stride] for k in range(3)], -1)  # (C_in, T', 3)
        return np.einsum("ctk,ock->ot", cols, w) + b[:, None]

    def norm(x, p):
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * g(f"{p}/gamma") + g(f"{p}/beta")

    def linear(x, p):
        return x @ g(f"{p}/weight").T + g(f"{p}/bias")

    x = gelu(conv1d(mel.astype(np.float64), g("encoder/conv1/weight"), g("encoder/conv1/bias"), 1))
    x = gelu(conv1d(x, g("encoder/conv2/weight"), g("encoder/conv2/bias"), 2)).T  # (T, d)
    x = x + g("encoder/position_encodings/encodings")
    d_head = D_MODEL // N_HEADS
    for i in range(N_LAYERS):
        p = f"encoder/layer_{i}"
        h = norm(x, f"{p}/self_attention/layer_norm")
        q, k, val = np.split(linear(h, f"{p}/self_attention/linear_0"), 3, axis=-1)  # (T, d) each
        split = lambda t: t.reshape(t.shape[0], N_HEADS, d_head).transpose(1, 0, 2)  # noqa: E731
        scores = split(q) @ split(k).transpose(0, 2, 1) / math.sqrt(d_head)  # (nh, T, T)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attn = (scores / scores.sum(-1, keepdims=True)) @ split(val)  # (nh, T, d_head)
        x = x + linear(attn.transpose(1, 0, 2).reshape(-1, D_MODEL), f"{p}/self_attention/linear_1")
        h = norm(x, f"{p}/ffn/layer_norm")
        x = x + linear(gelu(linear(h, f"{p}/ffn/linear_0")), f"{p}/ffn/linear_1")
    return norm(x, "encoder/layer_norm")


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """The sentence spoken by espeak-ng, as float32 mono at 16 kHz."""
    import soundfile as sf
    from scipy.signal import resample_poly

    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.skip("espeak-ng binary not found (apt-get install espeak-ng) to synthesize speech")
    wav = tmp_path_factory.mktemp("speech") / "fox.wav"
    subprocess.run([espeak, "-v", "en", "-w", str(wav), SENTENCE], check=True, capture_output=True)
    audio, sr = sf.read(wav, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if sr != 16000:
        common = math.gcd(sr, 16000)
        audio = resample_poly(audio, 16000 // common, sr // common).astype(np.float32)
    assert 1.0 < len(audio) / 16000 < 10.0
    return audio


def test_encoder_matches_a_reference_on_the_ct2_weights(loaded, ct2, processor, speech):
    model, _ = loaded
    mel = processor.feature_extractor(speech, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ours = model.model.encoder(mel).last_hidden_state[0].double().numpy()  # (1500, 384)
    reference = _ct2_reference_encoder(ct2.variables, mel[0].numpy())
    assert ours.shape == reference.shape == (1500, D_MODEL)
    assert np.isfinite(ours).all()
    assert 0.5 < ours.std() < 5.0  # after the final layer norm: unit-ish scale, not blown up
    np.testing.assert_allclose(ours, reference, atol=1e-3 * np.abs(reference).max())


def _normalize(text: str) -> str:
    return " ".join(re.sub(r"[^a-z' ]", " ", text.lower()).split())


def test_greedy_transcription_of_espeak_speech(loaded, processor, speech):
    import jiwer

    model, _ = loaded
    features = processor(speech, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        ids = model.generate(features, num_beams=1, do_sample=False, max_new_tokens=64)
    text = processor.batch_decode(ids, skip_special_tokens=True)[0]
    error_rate = jiwer.wer(SENTENCE, _normalize(text))
    assert error_rate <= 0.2, f"transcribed {text!r}: WER {error_rate:.2f}"
