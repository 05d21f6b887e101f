"""Grow the vocabulary: add words or special tokens to the tokenizer and rows to the embeddings.

Transformers' recipe is `tokenizer.add_tokens(...)` then `model.resize_token_embeddings(len(tokenizer))`
(Wolf et al. 2020). Here it is one call that returns a new model, so a cached model is never
changed, and the new rows start somewhere sensible instead of at random:

- "pieces" (default): the mean of the embeddings of the pieces the old tokenizer split the word
  into, so "COVID-19" starts as the average of "co", "##vid", "-", "19" (the initialisation
  Hewitt 2021, "Initializing new word embeddings for pretrained language models", argues for);
- "mean": the mean of all the old embeddings;
- "random": normal with mean 0 and the old embedding matrix's own standard deviation.

Old tokens keep their ids and rows, so every text without the new tokens gives exactly the
outputs it gave before.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import torch
from tokenizers import AddedToken, Tokenizer
from torch import nn

from .errors import InputError, WeightFileError
from .tokenization import TextTokenizer

if TYPE_CHECKING:
    from .workbench_model import WorkbenchModel

INIT_STRATEGIES = {
    "pieces": "mean of the embeddings of the pieces the old tokenizer split the token into",
    "mean": "mean of all the old embeddings",
    "random": "random normal with the old embeddings' standard deviation",
}

# Heads whose outputs are the vocabulary, so they grow with it (when not tied to the embedding)
VOCABULARY_TASKS = ("masked-lm", "causal-lm", "seq2seq-lm")


@dataclass(frozen=True)
class VocabularyChange:
    """What `add_tokens` did: every requested token ends up in exactly one of added, existing or duplicates."""
    added: dict[str, int]                  # new token -> its id
    existing: dict[str, int]               # requested, but already a single token: not added; -> that token's id
    duplicates: list[str]                  # repeated within the request (after normalisation): added once
    pieces: dict[str, list[str]]           # how the old tokenizer split each added token
    init: str                              # one of INIT_STRATEGIES
    special: bool                          # added as special tokens (never split, never normalised)
    fallbacks: list[str] = field(default_factory=list)  # "pieces" tokens with no pieces, given the mean instead

    def summary(self) -> str:
        parts = [f"added {len(self.added)} token{'s' * (len(self.added) != 1)}"]
        if self.existing:
            parts.append("already in the vocabulary: " + ", ".join(f"{t!r} (id {i})" for t, i in self.existing.items()))
        if self.duplicates:
            parts.append("repeated, added once: " + ", ".join(repr(t) for t in self.duplicates))
        return "; ".join(parts) + "."


def grow_vocabulary(model: "WorkbenchModel", tokens: str | Sequence[str], special: bool = False, init: str = "pieces",
                    seed: int = 0) -> tuple["WorkbenchModel", VocabularyChange]:
    """A new model whose tokenizer knows `tokens` as single tokens, and what was added or skipped.

    Everything is checked before anything is built, so a bad request changes nothing.
    """
    if model.modality != "text" or model.tokenizer is None or getattr(model.network.embed, "word", None) is None:
        raise InputError(f"{model.name or model.family} has no token vocabulary to add tokens to "
                         "(adding tokens is for text models).")
    requested = _validate(tokens, init)
    old = model.tokenizer
    normalise = _normaliser(old.backend, special)

    added_order: list[str] = []
    existing: dict[str, int] = {}
    duplicates: list[str] = []
    seen: set[str] = set()
    for token in requested:
        key = normalise(token)
        if key in seen:
            duplicates.append(token)
            continue
        seen.add(key)
        known = _existing_id(old.backend, token, special)
        if known is not None:
            existing[token] = known
        else:
            added_order.append(token)

    pieces = {t: old.backend.encode(t, add_special_tokens=False) for t in added_order}
    tokenizer = _tokenizer_with(old, added_order, special)
    added = {t: tokenizer.token_to_id(t) for t in added_order}

    network = copy.deepcopy(model.network)
    config = copy.deepcopy(model.config)
    generator = torch.Generator().manual_seed(seed)
    old_rows = network.embed.word.weight.shape[0]
    new_ids = sorted(added.values())
    size = max([old_rows] + [i + 1 for i in new_ids])
    gaps = sorted(set(range(old_rows, size)) - set(new_ids))
    if gaps:
        raise WeightFileError(f"The tokenizer has ids {gaps[:5]} beyond the embedding's {old_rows} rows; "
                              "the checkpoint's tokenizer and weights do not belong together.")
    piece_ids = {t: pieces[t].ids for t in added_order}
    fallbacks = [t for t in added_order if init == "pieces" and not piece_ids[t]]

    old_embedding = network.embed.word.weight
    if network.is_encoder_decoder and any(isinstance(getattr(m, "word", None), nn.Embedding)
                                          and m.word is not network.embed.word for m in network.modules()):
        raise InputError(f"{model.display_name} has separate source and target token tables (a Marian model with "
                         "share_encoder_decoder_embeddings=False) behind one tokenizer; adding tokens would grow "
                         "only one of them, so it is not supported.")
    grown = _grow_rows(old_embedding.detach(), size, added, piece_ids, init, generator)  # (V', d)
    old_word = network.embed.word
    new_word = nn.Embedding.from_pretrained(grown, freeze=False)
    for module in network.modules():  # an encoder-decoder's other stack may read the same table (T5, BART)
        if getattr(module, "word", None) is old_word:
            module.word = new_word
    _grow_head(network, model.task, old_embedding, old_rows, size, added, piece_ids, init, generator)
    config.vocab_size = size
    network.set_config(config)

    change = VocabularyChange(added=added, existing=existing, duplicates=duplicates,
                              pieces={t: pieces[t].tokens for t in added_order}, init=init, special=special,
                              fallbacks=fallbacks)
    suffix = f" (+{len(added)} token{'s' * (len(added) != 1)})" if added else ""
    grown_model = model.derive(network, config, tokenizer=tokenizer, name=f"{model.display_name}{suffix}")
    return grown_model, change


# ---------------------------------------------------------------------------- checks

def _validate(tokens: str | Sequence[str], init: str) -> list[str]:
    if init not in INIT_STRATEGIES:
        raise InputError(f"Unknown initialisation {init!r}; choose one of {', '.join(INIT_STRATEGIES)}.")
    if isinstance(tokens, str):
        tokens = [tokens]
    if tokens is None or not isinstance(tokens, Sequence) or len(tokens) == 0:
        raise InputError("No tokens given: pass a list of words or special tokens, e.g. ['COVID-19', '<sep2>'].")
    not_text = [i for i, t in enumerate(tokens) if not isinstance(t, str)]
    if not_text:
        raise InputError(f"Tokens must be strings; item(s) {not_text} are not. Nothing was added.")
    empty = [i for i, t in enumerate(tokens) if not t.strip()]
    if empty:
        raise InputError(f"Token(s) at position {', '.join(map(str, empty))} are empty; every token needs at least "
                         "one visible character. Nothing was added.")
    padded = [t for t in tokens if t != t.strip()]
    if padded:
        raise InputError(f"Token(s) {', '.join(map(repr, padded))} start or end with spaces, which would only match "
                         "text with those spaces; remove them. Nothing was added.")
    return list(tokens)


def _normaliser(backend: Tokenizer, special: bool):
    """Normal added tokens match normalised text (lower-cased for uncased BERT), so 'Cat' and 'cat' are one token."""
    if special or backend.normalizer is None:
        return lambda token: token
    return backend.normalizer.normalize_str


def _existing_id(backend: Tokenizer, token: str, special: bool) -> int | None:
    """The id of `token` if the tokenizer already reads it as one token (itself, or its normalised form)."""
    direct = backend.token_to_id(token)
    if direct is not None or special:
        return direct
    encoding = backend.encode(token, add_special_tokens=False)
    if len(encoding.ids) != 1 or _is_unknown(backend, encoding.ids[0]):
        return None  # several pieces, or one unknown-token placeholder: a genuinely new token
    return encoding.ids[0]


def _is_unknown(backend: Tokenizer, index: int) -> bool:
    unk = getattr(backend.model, "unk_token", None)
    return unk is not None and backend.token_to_id(unk) == index


def _tokenizer_with(old: TextTokenizer, tokens: list[str], special: bool) -> TextTokenizer:
    backend = Tokenizer.from_str(old.backend.to_str())  # a copy: the old tokenizer stays as it was
    extra = copy.deepcopy(old.extra_config)
    if special:
        backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in tokens])
        listed = [t for t in extra.get("additional_special_tokens", []) if isinstance(t, str)]
        extra["additional_special_tokens"] = listed + [t for t in tokens if t not in listed]
    else:
        backend.add_tokens([AddedToken(t, normalized=True) for t in tokens])
    return TextTokenizer(backend, dict(old.special), extra)


# ---------------------------------------------------------------------------- new rows

def _new_rows(matrix: torch.Tensor, added: dict[str, int], piece_ids: dict[str, list[int]], init: str,
              generator: torch.Generator) -> dict[int, torch.Tensor]:
    """The initial row for each new id, from the old `matrix` (V, d) or bias (V,)."""
    mean = matrix.mean(dim=0)  # (d,) or ()
    rows = {}
    for token, index in added.items():
        if init == "pieces" and piece_ids[token]:
            rows[index] = matrix[piece_ids[token]].mean(dim=0)  # (n_pieces, d) -> (d,)
        elif init == "random" and matrix.dim() == 2:
            rows[index] = torch.randn(matrix.shape[1], generator=generator, dtype=matrix.dtype) * matrix.std()
        else:  # "mean", a token without pieces, and output biases under "random" (an average prior)
            rows[index] = mean
    return rows


@torch.no_grad()
def _grow_rows(matrix: torch.Tensor, size: int, added: dict[str, int], piece_ids: dict[str, list[int]], init: str,
               generator: torch.Generator) -> torch.Tensor:
    """`matrix` (V, ...) extended to `size` rows, the new ones initialised by `init`; old rows are copied exactly."""
    grown = torch.zeros((size,) + tuple(matrix.shape[1:]), dtype=matrix.dtype)  # (V', d) or (V',)
    grown[: matrix.shape[0]] = matrix
    for index, row in _new_rows(matrix, added, piece_ids, init, generator).items():
        grown[index] = row
    return grown


def _grow_head(network, task: str | None, old_embedding: torch.Tensor, old_rows: int, size: int,
               added: dict[str, int], piece_ids: dict[str, list[int]], init: str, generator: torch.Generator) -> None:
    """Grow a language-modelling head's vocabulary outputs; a tied unembedding just follows the new embedding."""
    if network.head is None or task not in VOCABULARY_TASKS:
        return
    for module in network.head.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            if param is old_embedding:
                setattr(module, name, network.embed.word.weight)  # tied: stays tied to the grown embedding
            elif param.shape[0] == old_rows:  # the decoder's (V, d) weight or (V,) bias
                setattr(module, name, nn.Parameter(
                    _grow_rows(param.detach(), size, added, piece_ids, init, generator)))
        for name, buffer in list(module.named_buffers(recurse=False)):
            if buffer.dim() == 2 and buffer.shape == (1, old_rows):  # BART's and Marian's final_logits_bias (1, V):
                # new tokens get 0, as transformers' resize_token_embeddings extends it
                module.register_buffer(name, torch.cat([buffer, buffer.new_zeros(1, size - old_rows)], dim=1))
