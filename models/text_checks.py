"""What a text model accepts, checked before the tokenizer or the network sees it, each refusal an `InputError`.

The tokenizer (a Rust library) and torch's embedding lookup fail on bad input with bare TypeErrors and
IndexErrors that say nothing a user can act on; these checks name the problem and the fix instead.
"""
from __future__ import annotations

import operator
from typing import Any

import torch

from .errors import InputError

_HOW = "pass a string, a list of strings, or sentence pairs as (first, second) tuples of two strings"


def _kind(value: Any) -> str:
    return "bytes" if isinstance(value, (bytes, bytearray)) else type(value).__name__


def text_batch(texts: Any) -> list:
    """One text (a string or a pair) or a list of them -> a list, refusing what is neither."""
    if isinstance(texts, (str, tuple)):
        return [texts]
    if isinstance(texts, (bytes, bytearray)):
        raise InputError("Text was given as bytes; decode it first (data.decode('utf-8')), then " + _HOW + ".")
    if isinstance(texts, (list, range)) or (hasattr(texts, "__iter__") and not isinstance(texts, (dict, set, torch.Tensor))):
        return list(texts)
    raise InputError(f"Text must be a string or a list of strings, got {_kind(texts)}: {_HOW}.")


def check_text(text: Any, index: int | None = None) -> None:
    """One item of a batch (`index`, None for a text alone): a non-empty string, or a pair of them, of valid Unicode."""
    where = "The text" if index is None else f"Example {index}"
    if isinstance(text, tuple):
        if len(text) != 2:
            raise InputError(f"{where} is a tuple of {len(text)} items; a sentence pair is a tuple of exactly two "
                             "strings (first, second). For separate texts use a list.")
        parts = text
    else:
        parts = (text,)
    for part in parts:
        if isinstance(part, (bytes, bytearray)):
            raise InputError(f"{where} is bytes, not text; decode it first (data.decode('utf-8')).")
        if not isinstance(part, str):
            raise InputError(f"Text must be a string or a pair of strings, got {_kind(part)} in {where.lower()}; "
                             f"{_HOW}.")
        if not part.strip():
            raise InputError("Empty text: type at least one word.")
        try:
            part.encode("utf-8")
        except UnicodeEncodeError as error:  # lone surrogates, e.g. from a bad decode or a JSON "\ud800"
            bad = part[error.start]
            raise InputError(f"{where} holds U+{ord(bad):04X} at character {error.start}, a lone surrogate that is "
                             "not valid Unicode; remove it, or decode the source with errors='replace'.") from None


def check_max_length(max_length: Any, model_limit: int) -> int | None:
    """None (the model's default limit) or a whole number of tokens of at least 1, at most model_limit."""
    if max_length is None:
        return None
    if isinstance(max_length, bool):
        raise InputError(f"max_length must be a whole number of tokens, got {max_length!r}.")
    try:
        value = operator.index(max_length)
    except TypeError:
        raise InputError(f"max_length must be a whole number of tokens, got {max_length!r}.") from None
    if value < 1:
        # 0 must not mean "no limit": say so rather than run untruncated
        raise InputError(f"max_length={value} leaves no tokens; give at least 1 (at most {model_limit}), or leave it "
                         "out for the model's limit.")
    # past the position table: cut at the table (the truncation warning names the model's limit); sweeps pass
    # one max_length to models of any size
    return min(value, model_limit)


def check_token_ids(input_ids: Any, attention_mask: Any, vocab_size: int,
                    model_limit: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) int64 ids in the vocabulary and no longer than the position table, and a (B, T) mask of 0s and 1s."""
    ids = _integer_tensor(input_ids, "input_ids", "token ids")
    ids = ids[None] if ids.dim() == 1 else ids
    if ids.dim() != 2:
        raise InputError(f"input_ids must be (tokens,) or (batch, tokens); got shape {tuple(ids.shape)}.")
    if ids.numel() == 0:
        raise InputError("Empty input: no token ids given.")
    if int(ids.max()) >= vocab_size or int(ids.min()) < 0:
        raise InputError(f"Token ids must lie in 0..{vocab_size - 1}.")
    if ids.shape[1] > model_limit:
        raise InputError(f"input_ids has {ids.shape[1]} tokens; the model has {model_limit} positions. Cut the ids to "
                         f"at most {model_limit} (or pass text, which is truncated with a warning).")
    if attention_mask is None:
        return ids, torch.ones_like(ids)
    mask = _integer_tensor(attention_mask, "attention_mask", "0s and 1s")
    mask = mask[None] if mask.dim() == 1 else mask
    if tuple(mask.shape) != tuple(ids.shape):
        raise InputError(f"attention_mask has shape {tuple(mask.shape)}; it must match input_ids, {tuple(ids.shape)}.")
    if bool(((mask != 0) & (mask != 1)).any()):
        raise InputError("attention_mask must hold only 0 (padding) and 1 (a real token).")
    if bool((mask.sum(-1) == 0).any()):
        raise InputError("attention_mask has a row of only 0s; every example needs at least one real token (1).")
    return ids, mask


def _integer_tensor(value: Any, name: str, what: str) -> torch.Tensor:
    """A long tensor from lists, arrays or tensors of whole numbers; floats only when whole and finite."""
    try:
        tensor = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError, OverflowError) as error:
        raise InputError(f"{name} must be a list or tensor of {what}; got {_kind(value)} ({error}).") from None
    if tensor.is_floating_point() or tensor.is_complex():
        if tensor.is_complex() or not bool(torch.isfinite(tensor).all()) or bool((tensor != tensor.round()).any()):
            raise InputError(f"{name} must hold whole numbers ({what}); got {tensor.dtype} values that are not.")
    elif tensor.dtype not in (torch.bool, torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64):
        raise InputError(f"{name} must hold {what}; got {tensor.dtype}.")
    return tensor.to(torch.long)

