""""Link to this view": the address that reopens this page with the same model, text and view elsewhere.

Every widget whose value is part of a view is bound to the URL (app/state.keep), so the address bar
already holds the view; this shows it whole, with a copy button, so nobody has to find the address bar
on a projector. A model made in this session (a pruned copy, a trained head) exists in this session
only: the link names it, and another session gets the default model instead, so the caption says so.
"""
from __future__ import annotations

from urllib.parse import urlencode

import streamlit as st

from .model_cache import session_models


def view_link() -> str | None:
    """This page's URL with every bound value, or None when the browser has not said its address (tests)."""
    base = st.context.url
    if not base:
        return None
    params = {key: value for key, value in st.query_params.to_dict().items()}
    return f"{base}?{urlencode(params)}" if params else base


def render_view_link(container=None) -> None:
    container = container or st.sidebar
    link = view_link()
    if link is None:
        return
    with container.expander("Link to this view"):
        st.code(link, language=None, wrap_lines=True)
        note = "Opens this page with the same model, text and view: copy it with the button beside it."
        if st.session_state.get("model_choice") in session_models():
            note += " The model was made in this session, so another session opens the default model instead."
        st.caption(note)
