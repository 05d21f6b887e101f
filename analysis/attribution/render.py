"""Colours and small pictures for attributions: token highlighting, image overlays, waveform strips.

Pure functions of numbers (never models), shared by the app's views and the HTML export.
Signed scores use a diverging scale (green up, magenta down, white at zero); magnitudes a
sequential blue, so a reader never mistakes a magnitude for a sign.
"""
from __future__ import annotations

import base64
import html
import io
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

POSITIVE = np.array([26, 150, 65], dtype=float)     # green: pushed the target up
NEGATIVE = np.array([208, 28, 139], dtype=float)    # magenta: pushed it down
MAGNITUDE = np.array([33, 102, 172], dtype=float)   # blue: unsigned importance
WHITE = np.array([255, 255, 255], dtype=float)


def normalise(scores: np.ndarray, signed: bool, keep: np.ndarray | None = None) -> np.ndarray:
    """Scale to [-1, 1] (signed) or [0, 1] by the largest |score| among the kept units."""
    scores = np.asarray(scores, dtype=float)
    pool = scores[keep] if keep is not None and keep.any() else scores
    top = float(np.abs(pool).max()) if pool.size else 0.0
    out = scores / top if top > 0 else np.zeros_like(scores)
    return np.clip(out, -1.0, 1.0) if signed else np.clip(np.abs(out), 0.0, 1.0)


def colours(values: np.ndarray, signed: bool) -> np.ndarray:
    """(..., 3) uint8 colours for normalised values: diverging when signed, sequential otherwise."""
    v = np.asarray(values, dtype=float)[..., None]
    if signed:
        end = np.where(v >= 0, POSITIVE, NEGATIVE)
        rgb = WHITE + np.abs(v) * (end - WHITE)
    else:
        rgb = WHITE + np.abs(v) * (MAGNITUDE - WHITE)
    return rgb.round().astype(np.uint8)


def display_token(token: str) -> tuple[str, bool]:
    """(text to show, starts a new word) for WordPiece '##', byte-level 'Ġ' and SentencePiece '▁' tokens."""
    if token.startswith("##"):
        return token[2:], False
    if token[:1] in ("Ġ", "▁"):
        return token[1:], True
    return token.replace("Ċ", "⏎"), True


def token_html(tokens: Sequence[str], scores: np.ndarray, signed: bool, special: Sequence[bool] = ()) -> str:
    """Tokens as spans coloured by score; special tokens grey-bordered; the score in each tooltip."""
    special_mask = np.asarray(special, dtype=bool) if len(special) else np.zeros(len(tokens), dtype=bool)
    scaled = normalise(scores, signed, ~special_mask if (~special_mask).any() else None)
    rgb = colours(scaled, signed)
    spans = []
    for i, (token, raw, colour) in enumerate(zip(tokens, np.asarray(scores, dtype=float), rgb)):
        text, new_word = display_token(token)
        dark = abs(scaled[i]) > 0.6
        style = (f"background: rgb({colour[0]},{colour[1]},{colour[2]}); color: {'#fff' if dark else '#111'}; "
                 "padding: 1px 3px; border-radius: 3px; line-height: 2;")
        if special_mask[i]:
            style += " border: 1px dashed #999; color: #666; background: #f4f4f4;"
        gap = " " if new_word and i else ""
        spans.append(f'{gap}<span title="{html.escape(token)}: {raw:+.4g}" style="{style}">{html.escape(text)}</span>')
    return '<div style="font-family: sans-serif; font-size: 15px;">' + "".join(spans) + "</div>"


def image_overlay(scores: np.ndarray, signed: bool, image: np.ndarray | None = None, alpha: float = 0.6,
                  size: tuple[int, int] | None = None) -> Image.Image:
    """Heatmap (h, w) coloured, resized to the image (or `size`) and blended over a grey copy of it."""
    heat = Image.fromarray(colours(normalise(scores, signed), signed))
    if image is not None:
        base = Image.fromarray(_as_uint8_rgb(image)).convert("L").convert("RGB")
        heat = heat.resize(base.size, Image.NEAREST)
        return Image.blend(base, heat, alpha)
    return heat.resize(size or (max(64, heat.width * 8), max(64, heat.height * 8)), Image.NEAREST)


def waveform_strip(waveform: np.ndarray, scores: np.ndarray, signed: bool, width: int = 800,
                   height: int = 120) -> Image.Image:
    """The waveform's envelope drawn in black over a time heatmap of the scores."""
    frames = np.asarray(scores, dtype=float).reshape(-1)
    rgb = colours(normalise(frames, signed), signed)  # (n_frames, 3)
    columns = rgb[np.minimum((np.arange(width) * len(frames)) // width, len(frames) - 1)]  # (width, 3)
    picture = Image.fromarray(np.repeat(columns[None], height, axis=0))
    wave = np.asarray(waveform, dtype=float).reshape(-1)
    if wave.size:
        peak = float(np.abs(wave).max()) or 1.0
        draw = ImageDraw.Draw(picture)
        edges = np.linspace(0, wave.size, width + 1).astype(int)
        for x in range(width):
            part = wave[edges[x]: max(edges[x + 1], edges[x] + 1)]
            top = height / 2 - part.max() / peak * (height / 2 - 2)
            bottom = height / 2 - part.min() / peak * (height / 2 - 2)
            draw.line([(x, top), (x, bottom)], fill=(20, 20, 20))
    return picture


def png_data_uri(picture: Image.Image) -> str:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _as_uint8_rgb(image: np.ndarray) -> np.ndarray:
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3):
        array = np.moveaxis(array, 0, -1)  # (C, H, W) -> (H, W, C)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    if array.dtype != np.uint8:
        low, high = float(array.min()), float(array.max())
        array = ((array - low) / (high - low if high > low else 1.0) * 255).round().astype(np.uint8)
    return np.stack([array] * 3, axis=-1) if array.ndim == 2 else array
