"""Tokens as people read them: byte-level BPE and SentencePiece markers made visible, not cryptic.

GPT-2/Llama tokenizers write a leading space as "Ġ" and a newline as "Ċ"; SentencePiece writes
a space as "▁". Pages show "·" and "↵" instead (every Latin font has a middle dot; headless
Chromium on Debian draws "␣" with an Arabic fallback glyph); exports keep the raw tokens.
"""
from __future__ import annotations

from collections.abc import Sequence

_MARKERS = str.maketrans({"Ġ": "·", "▁": "·", "Ċ": "↵", "ĉ": "⇥"})


def display_token(token: str) -> str:
    return token.translate(_MARKERS)


def display_tokens(tokens: Sequence[str]) -> list[str]:
    return [display_token(t) for t in tokens]
