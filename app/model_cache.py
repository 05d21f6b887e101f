"""Models load once per process and are shared, read-only, by every session.

Anything a user changes (a pruned copy, new tokens, a new head) is a new model kept in that
user's `st.session_state`, never written back into this cache. Each session model remembers the
Python expression that rebuilds it, so a page's "code to reproduce" can start from it.
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


def _recipes() -> dict[str, str]:
    return st.session_state.setdefault("session_model_recipes", {})


def add_session_model(name: str, model: models.WorkbenchModel, recipe: str | None = None) -> str:
    """Keep ``model`` for this session under ``name``; ``recipe`` is Python that rebuilds it.

    Example: ``add_session_model("minilm − 2 heads", pruned, 'load_model("minilm").prune_heads({1: [0, 2]})')``.
    """
    session_models()[name] = model
    if recipe:
        _recipes()[name] = recipe
    return name


def keep_session_model(label: str, model: models.WorkbenchModel, recipe: str | None = None) -> str:
    """Button callback work: keep ``model`` as ``label`` (``label (2)``… if taken) and pick it in the sidebar.

    Callbacks run before the sidebar is drawn, so the sidebar's choice may still be set here.
    """
    name, n = label, 1
    while name in session_models():
        n += 1
        name = f"{label} ({n})"
    add_session_model(name, model, recipe)
    st.session_state["model_choice"] = name
    return name


def model_recipe(name: str) -> str:
    """Python expression that gives the model called ``name`` (shared: ``load_model(name)``)."""
    recipe = _recipes().get(name)
    if recipe:
        return recipe
    if name in session_models():
        return f"...  # {name!r} was made in this app session; rebuild it as that page's code shows"
    return f"load_model({name!r})"


def get_model(name: str) -> models.WorkbenchModel:
    """A session-owned model by that name, else the shared one."""
    own = session_models()
    return own[name] if name in own else shared_model(name)
