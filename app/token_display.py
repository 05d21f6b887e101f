"""Tokens as people read them: byte-level BPE pieces decoded, space and newline markers made visible.

Byte-level BPE tokenizers (GPT-2, Llama 3, SmolLM2) write every byte as a printable character of
GPT-2's table (``bytes_to_unicode``, Radford et al. 2019): a leading space is "Ġ", a newline "Ċ",
and a curly apostrophe, three UTF-8 bytes, "âĢĻ". Pages decode those bytes back to text, then
show a space as "·", a newline as "↵" and a tab as "⇥" (every Latin font has them; headless
Chromium on Debian draws "␣" with an Arabic fallback glyph). SentencePiece's "▁" is a space too.
Exports keep the raw tokens.
"""
from __future__ import annotations

from collections.abc import Sequence

_MARKERS = str.maketrans({" ": "·", "▁": "·", "\n": "↵", "\t": "⇥"})


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table: printable bytes stand for themselves, the other 68 are shifted to U+0100 onwards."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {b: chr(b) for b in printable}
    shifted = (b for b in range(256) if b not in table)
    table.update({b: chr(256 + n) for n, b in enumerate(shifted)})
    return table


_CHAR_TO_BYTE = {c: b for b, c in _bytes_to_unicode().items()}
_SHIFTED = frozenset(c for c in _CHAR_TO_BYTE if ord(c) >= 256)  # "Ġ", "Ċ", "Ģ"...: only byte-level BPE writes these


def is_byte_level(tokens: Sequence[str]) -> bool:
    """True if the tokens are byte-level BPE pieces: some carry a shifted byte (a space, a newline, part of a
    multi-byte character) that no other tokenizer writes."""
    return any(c in _SHIFTED for token in tokens for c in token)


def readable_token(token: str, byte_level: bool | None = None) -> str:
    """The text a token stands for: "Ġcat" -> " cat", "âĢĻ" -> "’"; anything else unchanged.

    ``byte_level``: whether the token comes from a byte-level BPE tokenizer (None: judge from the token
    alone). A piece holding part of a multi-byte character shows the rest as "�".
    """
    if byte_level is None:
        byte_level = is_byte_level([token])
    if byte_level and token and all(c in _CHAR_TO_BYTE for c in token):
        return bytes(_CHAR_TO_BYTE[c] for c in token).decode("utf-8", errors="replace")
    return token


def display_token(token: str, byte_level: bool | None = None) -> str:
    """A token for the eye: decoded, with spaces, newlines and tabs drawn as "·", "↵" and "⇥"."""
    return readable_token(token, byte_level).translate(_MARKERS)


def display_tokens(tokens: Sequence[str]) -> list[str]:
    """``display_token`` for a whole sequence, which says once whether it is byte-level ("é" alone could be either)."""
    byte_level = is_byte_level(tokens)
    return [display_token(t, byte_level) for t in tokens]
