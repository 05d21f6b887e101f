"""The sidebar: which model, which input. Every page reads the choice through these functions.

A link can preset the choice for a new session: ``?model=smollm2&text=The+cat+sat`` (an
embedded or session model name, or any folder / hub id). Educators share such links; the
browser tests use them to start eight sessions on different models at once.
"""
from __future__ import annotations

import csv
from pathlib import Path

import streamlit as st

from models.embedded import DESCRIPTIONS, embedded_names, embedded_names_for

from .model_cache import NEXT_CHOICE, session_models
from .state import keep
from .view_link import render_view_link

ROOT = Path(__file__).resolve().parent.parent
LOCAL, HUB = "Local folder…", "Hugging Face hub id…"
_FROM_LINK = "_sidebar_read_link"
LAST_TEXT = "_last_typed_text"  # the free text typed last on any page: where a page's own text box starts


def model_choices() -> list[str]:
    """Embedded text models first (most pages read text), the other embedded ones, this session's, a folder, an id."""
    text = embedded_names_for("text")
    return text + [n for n in embedded_names() if n not in text] + list(session_models()) + [LOCAL, HUB]


def _apply_link_once() -> None:
    """Read ``?model=`` and ``?text=`` on a session's first run only; later the widgets rule."""
    if st.session_state.get(_FROM_LINK):
        return
    st.session_state[_FROM_LINK] = True
    model = (st.query_params.get("model") or "").strip()
    if model:
        if model in model_choices():
            st.session_state["model_choice"] = model
        elif model.startswith((".", "/", "~")):
            st.session_state["model_choice"], st.session_state["model_folder"] = LOCAL, model
        else:
            st.session_state["model_choice"], st.session_state["model_hub_id"] = HUB, model
    text = st.query_params.get("text")
    if text:
        st.session_state["_link_text"] = text


def render_sidebar() -> None:
    _apply_link_once()
    st.sidebar.title("Transformer Workbench")
    choices = model_choices()
    if st.session_state.get(NEXT_CHOICE) in choices:  # a model a page made in its last run (a pruned copy)
        st.session_state["model_choice"] = st.session_state.pop(NEXT_CHOICE)
    if st.session_state.get("model_choice") not in choices:  # a session model that is gone, say
        st.session_state.pop("model_choice", None)
    # bound to the URL like every view widget, so the address (and "Link to this view") names the model
    choice = st.sidebar.selectbox("Model", choices, key="model_choice", bind="query-params",
                                  format_func=lambda n: f"{n} — {DESCRIPTIONS[n]}" if n in DESCRIPTIONS else n)
    if choice == LOCAL:
        st.sidebar.text_input("Folder with config.json and weights", placeholder="/path/to/model",
                              **keep("model_folder"))
    elif choice == HUB:
        st.sidebar.text_input("Hub id", placeholder="prajjwal1/bert-tiny", **keep("model_hub_id"))
        st.sidebar.caption("Needs the network the first time, or a copy in the local Hugging Face cache.")
    render_view_link(st.sidebar)


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


def example_pairs() -> list[tuple[str, str]]:
    """Question/answer pairs from sample_data/sentence_pairs.csv (columns first, second)."""
    path = ROOT / "sample_data" / "sentence_pairs.csv"
    pairs: list[tuple[str, str]] = []
    if path.exists():
        with path.open(newline="", encoding="utf-8") as handle:
            pairs = [(row["first"].strip(), row["second"].strip()) for row in csv.DictReader(handle)
                     if row.get("first") and row.get("second")]
    return pairs or [("Who barked at the mailman?", "The neighbour's dog did.")]


def _fill_pair(key: str) -> None:
    """Callback: copy the chosen example pair into the two editable fields."""
    first, second = st.session_state[f"{key}_pair_example"]
    st.session_state[f"{key}_first"], st.session_state[f"{key}_second"] = first, second


def text_input(key: str = "text", allow_pairs: bool = True) -> str | tuple[str, str]:
    """Free text, an example sentence, or (for encoders) a sentence pair."""
    modes = ["Free text", "Example"] + (["Sentence pair"] if allow_pairs else [])
    if st.session_state.get(f"{key}_mode") not in modes:  # e.g. pairs chosen, then a causal LM picked
        st.session_state.pop(f"{key}_mode", None)
    mode = st.radio("Input", modes, horizontal=True, **keep(f"{key}_mode"))
    if mode == "Example":
        return st.selectbox("Example sentence", example_sentences(), **keep(f"{key}_example"))
    if mode == "Sentence pair":
        pairs = example_pairs()
        st.selectbox("Example pair", pairs, format_func=lambda p: f"{p[0]} / {p[1]}", on_change=_fill_pair,
                     args=(key,), **keep(f"{key}_pair_example"))
        # defaults through session state, not the widgets: the callback above also writes these keys
        st.session_state.setdefault(f"{key}_first", pairs[0][0])
        st.session_state.setdefault(f"{key}_second", pairs[0][1])
        left, right = st.columns(2)
        first = left.text_input("First sentence", **keep(f"{key}_first"))
        second = right.text_input("Second sentence", **keep(f"{key}_second"))
        return (first, second)
    # a page's box starts with the text typed last on another page, else the link's text, else an example
    default = st.session_state.get(LAST_TEXT) or st.session_state.get("_link_text") or example_sentences()[0]
    text = st.text_area("Text", default, height=80, **keep(f"{key}_free"))
    st.session_state[LAST_TEXT] = text
    return text
