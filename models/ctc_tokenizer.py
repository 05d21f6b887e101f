"""The character vocabulary of a CTC model (Wav2Vec2ForCTC's vocab.json) and CTC decoding.

CTC (Graves et al. 2006) emits one symbol per audio frame; a transcript is read by merging
repeated symbols, dropping the blank (the pad token), and turning the word delimiter into spaces.
"""
from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Sequence


class CTCTokenizer:
    def __init__(self, vocab: dict[str, int], config: dict | None = None) -> None:
        self.vocab = vocab
        self.config = config or {}
        self.by_id = {i: t for t, i in vocab.items()}
        self.pad_token = self.config.get("pad_token", "<pad>")
        self.word_delimiter = self.config.get("word_delimiter_token", "|")
        specials = {self.config.get(k) for k in ("bos_token", "eos_token", "unk_token", "pad_token")}
        self.special = {t for t in specials | {"<s>", "</s>", "<unk>", "<pad>"} if t}

    @classmethod
    def from_folder(cls, folder: Path) -> "CTCTokenizer | None":
        folder = Path(folder)
        if not (folder / "vocab.json").exists():
            return None
        vocab = json.loads((folder / "vocab.json").read_text())
        if vocab and all(isinstance(v, dict) for v in vocab.values()):  # multilingual form {lang: vocab}
            vocab = next(iter(vocab.values()))
        path = folder / "tokenizer_config.json"
        return cls(vocab, json.loads(path.read_text()) if path.exists() else {})

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def id_to_token(self, index: int) -> str:
        return self.by_id.get(int(index), f"<{index}>")

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        """CTC decoding of per-frame argmax ids: merge repeats, drop blanks, delimiter -> space (as transformers)."""
        merged = [key for key, _ in itertools.groupby(int(i) for i in ids)]
        tokens = [self.id_to_token(i) for i in merged]
        tokens = [t for t in tokens if t != self.pad_token and not (skip_special_tokens and t in self.special)]
        return "".join(" " if t == self.word_delimiter else t for t in tokens).strip()

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        (folder / "vocab.json").write_text(json.dumps(self.vocab, indent=2))
        config = dict(self.config)
        config.setdefault("tokenizer_class", "Wav2Vec2CTCTokenizer")
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
