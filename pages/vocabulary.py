"""Vocabulary page: add tokens, see the tokenization before and after, the new rows' neighbours,
and what the new tokens do to the model's predictions.

Thin on purpose: widgets -> `model.add_tokens` and `analysis.vocabulary` -> render. The grown
model belongs to this session (the shared model is never changed); a button keeps it.
"""
from __future__ import annotations

import pandas as pd
import streamlit as st

from analysis.vocabulary import compare_tokenization, nearest_neighbours, prediction_change
from app.guard import shown_errors
from app.page_setup import selected_model_or_stop
from app.model_cache import get_model, keep_session_model, model_recipe
from app.model_kinds import for_example
from app.reproduce import add_tokens_recipe, vocabulary_code
from app.state import keep, keep_valid, session_memo
from app.token_display import display_tokens
from app.training_plots import before_after_bars
from models.errors import InputError, WorkbenchError
from models.vocabulary import INIT_STRATEGIES

DEFAULT_TOKENS = "COVID-19, <sep2>"
DEFAULT_TEXT = "COVID-19 cases fell sharply this week, and the hospitals were relieved."


def parse_tokens(raw: str) -> list[str]:
    """Comma-separated, spaces around each trimmed; empty items are kept so the core can name them."""
    return [part.strip() for part in raw.split(",")] if raw.strip() else []


def keep_grown(name: str, tokens: list[str], special: bool, init: str, seed: int) -> None:
    """Button callback: keep the grown model for this session and select it in the sidebar."""
    try:
        grown = get_model(name).add_tokens(tokens, special=special, init=init, seed=seed)
    except WorkbenchError as error:
        st.session_state["vocabulary_keep_error"] = str(error)
        return
    added = len(grown.vocabulary_change.added)
    keep_session_model(f"{name} + {added} token{'s' * (added != 1)}", grown,
                       add_tokens_recipe(model_recipe(name), tokens, special, init, seed))


st.header("Vocabulary")
name, model = selected_model_or_stop()
if model.tokenizer is None:
    st.info(f"{name} reads {model.modality} input: it has no vocabulary to grow.")
    st.stop()
st.caption(f"{name}: {model.tokenizer.vocab_size:,} tokens, {model.config.vocab_size:,} embedding rows"
           + (f", {model.task} head" if model.task else ", no task head"))

left, right = st.columns([3, 1])
raw = left.text_input("Tokens to add, separated by commas", DEFAULT_TOKENS, **keep("vocabulary_tokens"))
special = right.checkbox("Special tokens", **keep("vocabulary_special"),
                         help="Special tokens are never split or lower-cased, and decoding can skip them.")
keep_valid("vocabulary_init", list(INIT_STRATEGIES), "pieces")
init = st.radio("New embedding rows start as", list(INIT_STRATEGIES), **keep("vocabulary_init"), horizontal=True,
                format_func=lambda k: f"{k}: {INIT_STRATEGIES[k]}")
seed = int(st.number_input("Seed", min_value=0, value=0, step=1, **keep("vocabulary_seed"))) if init == "random" else 0
text = st.text_area("Text to compare on", DEFAULT_TEXT, **keep("vocabulary_text"), height=70)
tokens = parse_tokens(raw)

grown = None
with shown_errors("adding tokens"):
    grown = session_memo("vocabulary_grown", (name, id(model), tuple(tokens), special, init, seed),
                         lambda: model.add_tokens(tokens, special=special, init=init, seed=seed), max_entries=1)
if grown is None:
    st.stop()
change = grown.vocabulary_change

st.subheader("What changed")
st.caption(change.summary().capitalize())
if change.added:
    st.dataframe(pd.DataFrame([{"token": t, "id": i, "old pieces": " ".join(change.pieces[t]),
                                "initialised as": "mean of all rows" if t in change.fallbacks else init}
                               for t, i in change.added.items()]), hide_index=True, key="vocabulary_added")

with shown_errors("tokenizing"):
    tokenization = compare_tokenization(model, grown, text)
    st.markdown("**Before:** " + " ".join(f"`{t}`" for t in display_tokens(tokenization.before)))
    st.markdown("**After:** " + " ".join(f"`{t}`" for t in display_tokens(tokenization.after)))
    st.caption(f"{len(tokenization.before)} tokens before, {len(tokenization.after)} after")

if change.added:
    st.subheader("Nearest neighbours of the new rows")
    k = st.slider("Neighbours per token", 1, 20, 5, **keep("vocabulary_k"))
    neighbours = nearest_neighbours(grown, change.added, k=k)
    st.dataframe(neighbours, hide_index=True, key="vocabulary_neighbours")
    st.caption("Cosine similarity between input-embedding rows. With the 'pieces' start, a new word sits next "
               "to the pieces it was made from until training moves it.")

st.subheader("Effect on predictions")
with shown_errors("comparing predictions"):
    try:
        effect = session_memo("vocabulary_effect", (id(model), id(grown), text),
                              lambda: prediction_change(model, grown, text), max_entries=1)
    except InputError as error:  # e.g. a masked LM without a mask token in the text
        st.info(str(error))
        effect = None
    if effect is not None:
        if model.task is None:
            classifiers = for_example("text", ("sequence-classification", "token-classification"))
            st.caption(f"{name} has no prediction head; this compares its sentence vector (mean of the last hidden "
                       f"states) before and after. Pick a model with a classification head{classifiers} for labels.")
        st.dataframe(effect, hide_index=True, key="vocabulary_predictions")
        st.plotly_chart(before_after_bars(effect, "before and after"), key="vocabulary_prediction_chart")

st.button("Keep this model for the session", key="vocabulary_keep", disabled=not change.added,
          on_click=keep_grown, args=(name, tokens, special, init, seed),
          help="A new model for this session only (pick it in the sidebar); other sessions never see it.")
if st.session_state.get("vocabulary_keep_error"):
    st.error(st.session_state.pop("vocabulary_keep_error"))
with st.expander("Code to reproduce"):
    st.code(vocabulary_code(model_recipe(name), tokens, special, init, seed, text), language="python")
