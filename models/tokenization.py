"""Text to ids with the `tokenizers` library: one wrapper for tokenizer.json, WordPiece and byte-level BPE folders.

The wrapper owns padding and truncation (right padding, an attention mask, a warning when a
text is cut), because a tokenizer.json may carry fixed padding settings meant for training.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import torch
from tokenizers import Tokenizer
from tokenizers.implementations import BertWordPieceTokenizer, ByteLevelBPETokenizer

from .errors import InputError, ModelNotFoundError, WeightFileError, WorkbenchError
from .text_checks import check_text

TextInput = Union[str, tuple[str, str]]
WORKBENCH_CAP = "workbench's cap"   # whose limit a cut names when it is lower than the model's own


def truncation_warning(index: int, n_texts: int, n_tokens: int, limit: int, model_limit: int | None = None,
                       cap: str = WORKBENCH_CAP) -> str:
    """The one sentence every caller shows for a cut text (pages show it as it is).

    It names whose limit cut the text: the model's own positions, or a lower ``cap`` (the workbench's, which
    keeps every layer's attention in memory, or a caller's max_length), with what the model itself allows.
    """
    where = "The text has" if n_texts == 1 else f"Example {index} has"
    if model_limit is None or limit >= model_limit:
        return f"{where} {n_tokens:,} tokens; truncated to the model's limit of {limit:,} tokens."
    return f"{where} {n_tokens:,} tokens; truncated to the {cap} of {limit:,} tokens (the model allows {model_limit:,})."


@dataclass
class Encoded:
    input_ids: torch.Tensor           # (B, T) padded on the right
    attention_mask: torch.Tensor      # (B, T) 1 real, 0 padding
    token_type_ids: torch.Tensor      # (B, T) 0 first segment, 1 second
    tokens: list[list[str]]           # per example, without padding
    warnings: list[str] = field(default_factory=list)


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, special: dict[str, str], extra_config: dict | None = None) -> None:
        self.backend = tokenizer
        self.backend.no_padding()
        self.backend.no_truncation()
        self.special = special              # role ("pad_token", "cls_token", ...) -> token text
        self.extra_config = extra_config or {}

    # ------------------------------------------------------------------ loading and saving
    @classmethod
    def from_folder(cls, folder: Path) -> "TextTokenizer":
        folder = Path(folder)
        config = _read_json(folder / "tokenizer_config.json")
        special = _special_tokens(folder, config)
        try:  # the tokenizers library raises a bare Exception on a corrupt file
            if (folder / "tokenizer.json").exists():
                backend = Tokenizer.from_file(str(folder / "tokenizer.json"))
            elif (folder / "vocab.txt").exists():
                backend = BertWordPieceTokenizer(str(folder / "vocab.txt"),
                                                 lowercase=config.get("do_lower_case", True))._tokenizer
            elif (folder / "vocab.json").exists() and (folder / "merges.txt").exists():
                backend = ByteLevelBPETokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"))._tokenizer
            else:
                raise ModelNotFoundError(
                    f"No tokenizer in {folder}: expected tokenizer.json, vocab.txt, or vocab.json with merges.txt.")
        except WorkbenchError:
            raise
        except Exception as error:
            raise WeightFileError(f"The tokenizer files in {folder.name} cannot be read ({error}); they are corrupt: "
                                  "download or copy them again.") from None
        return cls(backend, special, config)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self.backend.save(str(folder / "tokenizer.json"))
        config = {k: v for k, v in self.extra_config.items() if k not in ("added_tokens_decoder", "tokenizer_file")}
        config.update(self.special)
        config.setdefault("tokenizer_class", "PreTrainedTokenizerFast")
        (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
        (folder / "special_tokens_map.json").write_text(json.dumps(self.special, indent=2))

    # ------------------------------------------------------------------ ids
    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    @property
    def pad_token_id(self) -> int | None:
        for role in ("pad_token", "eos_token", "unk_token"):
            if role in self.special and self.token_to_id(self.special[role]) is not None:
                return self.token_to_id(self.special[role])
        return None

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = False) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def id_to_token(self, index: int) -> str:
        return self.backend.id_to_token(int(index)) or f"<{index}>"

    def encode_batch(self, texts: Sequence[TextInput], max_length: int, add_special_tokens: bool = True,
                     model_limit: int | None = None, cap: str = WORKBENCH_CAP) -> Encoded:
        """Tokenize, truncate to `max_length` tokens (with a `truncation_warning`), and pad on the right.

        `model_limit`: the model's own positions, when `max_length` may be a lower ``cap`` the warning names."""
        if not texts:
            raise InputError("No text given: pass a string or a non-empty list of strings.")
        for i, text in enumerate(texts):
            check_text(text, i if len(texts) > 1 else None)
        encodings = self.backend.encode_batch(list(texts), add_special_tokens=add_special_tokens)
        warnings = []
        ids, types, tokens = [], [], []
        for i, enc in enumerate(encodings):
            n = len(enc.ids)
            if n > max_length:
                warnings.append(truncation_warning(i, len(texts), n, max_length, model_limit, cap))
                enc.truncate(max_length)
            ids.append(enc.ids)
            types.append(enc.type_ids)
            tokens.append(enc.tokens)
        pad = self.pad_token_id if self.pad_token_id is not None else 0
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
        token_type_ids = torch.zeros((len(ids), width), dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        for row, (x, t) in enumerate(zip(ids, types)):
            input_ids[row, : len(x)] = torch.tensor(x, dtype=torch.long)
            token_type_ids[row, : len(t)] = torch.tensor(t, dtype=torch.long)
            attention_mask[row, : len(x)] = 1
        return Encoded(input_ids, attention_mask, token_type_ids, tokens, warnings)


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        value = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise WeightFileError(f"{path.name} is not readable JSON ({error}); fix or replace it.") from None
    if not isinstance(value, dict):
        raise WeightFileError(f"{path.name} holds a JSON {type(value).__name__}, not an object; fix or replace it.")
    return value


def _special_tokens(folder: Path, config: dict) -> dict[str, str]:
    """Special-token roles from special_tokens_map.json, then tokenizer_config.json."""
    special: dict[str, str] = {}
    for source in (config, _read_json(folder / "special_tokens_map.json")):
        for role in ("bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"):
            value = source.get(role)
            if isinstance(value, dict):
                value = value.get("content")
            if isinstance(value, str):
                special[role] = value
    return special
