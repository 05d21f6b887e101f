"""Image and audio pickers shared by pages: the bundled samples, or a file the user uploads."""
from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import streamlit as st

from .state import keep

ROOT = Path(__file__).resolve().parent.parent
IMAGES = ROOT / "sample_data" / "images"
SPEECH = ROOT / "sample_data" / "speech"
UPLOAD = "Upload a file…"


def sample_images() -> list[str]:
    return sorted(p.name for p in IMAGES.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))


def sample_clips() -> list[str]:
    return sorted(p.name for p in SPEECH.glob("*.wav")) + sorted(f"formats/{p.name}" for p in (SPEECH / "formats").glob("*"))


def preferred_image(labels: Iterable[str]) -> str | None:
    """The first sample image named after one of a classifier's labels (``digit_7.png`` for a digits model), if any."""
    wanted = {str(label).strip().lower() for label in labels}
    for image in sample_images():
        if wanted & set(re.split(r"[_\-. ]+", Path(image).stem.lower())):
            return image
    return None


def image_input(key: str, labels: Iterable[str] = ()) -> tuple[Any, str] | None:
    """(an image source for load_image, a label) or None until something is chosen.

    ``labels``: the classes of the model that will read the image; the picker starts on a sample of one of them.
    """
    options = sample_images() + [UPLOAD]
    start = preferred_image(labels)
    choice = st.selectbox("Image", options, index=options.index(start) if start else 0, **keep(f"{key}_image_choice"))
    if choice == UPLOAD:
        uploaded = st.file_uploader("Any image Pillow opens (PNG, JPEG, GIF, BMP, TIFF, WebP)", key=f"{key}_image_file")
        return (uploaded.getvalue(), uploaded.name) if uploaded is not None else None
    return str(IMAGES / choice), choice


def audio_input(key: str) -> tuple[Any, str] | None:
    """(an audio source for load_audio, a label) or None until something is chosen."""
    choice = st.selectbox("Audio", sample_clips() + [UPLOAD], **keep(f"{key}_audio_choice"))
    if choice == UPLOAD:
        uploaded = st.file_uploader("WAV, FLAC, OGG or MP3", key=f"{key}_audio_file")
        return (uploaded.getvalue(), uploaded.name) if uploaded is not None else None
    path = SPEECH / choice
    return str(path), choice


def source_key(source: Any) -> str:
    """A short key for a picked source, to memoise results by: the path, or a digest of uploaded bytes."""
    return hashlib.sha1(source).hexdigest() if isinstance(source, bytes) else str(source)


def transcript_of(label: str) -> str | None:
    """The committed transcript of a sample clip, to show beside a model's."""
    import csv
    table = SPEECH / "transcripts.csv"
    if not table.exists():
        return None
    with open(table) as handle:
        for row in csv.DictReader(handle):
            if row["file"] == Path(label).with_suffix(".wav").name:
                return row["text"]
    return None
