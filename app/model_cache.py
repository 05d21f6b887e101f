"""Models load once per process and are shared, read-only, by every session.

Anything a user changes (a pruned copy, new tokens, a new head) is a new model kept in that
user's `st.session_state`, never written back into this cache.
"""
from __future__ import annotations

import threading

import streamlit as st

import models

_LOCK = threading.Lock()  # one conversion or load at a time: two sessions asking for SmolLM2 convert it once


@st.cache_resource(show_spinner="Loading model (once per server)…", max_entries=6)
def shared_model(name: str) -> models.WorkbenchModel:
    with _LOCK:
        return models.load_model(name)


def session_models() -> dict[str, models.WorkbenchModel]:
    """Models owned by this session: pruned copies, grown vocabularies, new heads, by display name."""
    return st.session_state.setdefault("session_models", {})


def get_model(name: str) -> models.WorkbenchModel:
    """A session-owned model by that name, else the shared one."""
    own = session_models()
    return own[name] if name in own else shared_model(name)
