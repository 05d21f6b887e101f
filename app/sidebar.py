"""The sidebar: which model, which input. Every page reads the choice through these functions."""
from __future__ import annotations

from pathlib import Path

import streamlit as st

from models.embedded import DESCRIPTIONS, embedded_names

from .model_cache import session_models

ROOT = Path(__file__).resolve().parent.parent
LOCAL, HUB = "Local folder…", "Hugging Face hub id…"
TEXT_MODELS = ["minilm", "sre-minilm", "smollm2"]


def model_choices() -> list[str]:
    names = [n for n in embedded_names() if n in TEXT_MODELS] + [n for n in embedded_names() if n not in TEXT_MODELS]
    return names + list(session_models()) + [LOCAL, HUB]


def render_sidebar() -> None:
    st.sidebar.title("Transformer Workbench")
    choices = model_choices()
    choice = st.sidebar.selectbox("Model", choices, key="model_choice",
                                  format_func=lambda n: f"{n} — {DESCRIPTIONS[n]}" if n in DESCRIPTIONS else n)
    if choice == LOCAL:
        st.sidebar.text_input("Folder with config.json and weights", key="model_folder",
                              placeholder="/path/to/model")
    elif choice == HUB:
        st.sidebar.text_input("Hub id", key="model_hub_id", placeholder="prajjwal1/bert-tiny")
        st.sidebar.caption("Needs the network the first time, or a copy in the local Hugging Face cache.")


def selected_model_name() -> str | None:
    """The model the user picked, or None while a folder or hub id is still empty."""
    choice = st.session_state.get("model_choice") or model_choices()[0]
    if choice == LOCAL:
        return (st.session_state.get("model_folder") or "").strip() or None
    if choice == HUB:
        return (st.session_state.get("model_hub_id") or "").strip() or None
    return choice


def example_sentences() -> list[str]:
    path = ROOT / "sample_data" / "sentences.txt"
    if path.exists():
        lines = [line.strip() for line in path.read_text().splitlines() if line.strip()]
        if lines:
            return lines
    return ["The animal didn't cross the street because it was too tired."]


def text_input(key: str = "text", allow_pairs: bool = True) -> str | tuple[str, str]:
    """Free text, an example sentence, or (for encoders) a sentence pair."""
    modes = ["Free text", "Example"] + (["Sentence pair"] if allow_pairs else [])
    mode = st.radio("Input", modes, horizontal=True, key=f"{key}_mode")
    if mode == "Example":
        return st.selectbox("Example sentence", example_sentences(), key=f"{key}_example")
    if mode == "Sentence pair":
        first = st.text_input("First sentence", "Who barked at the mailman?", key=f"{key}_first")
        second = st.text_input("Second sentence", "The neighbour's dog did.", key=f"{key}_second")
        return (first, second)
    return st.text_area("Text", example_sentences()[0], key=f"{key}_free", height=80)
