"""Models load once per process and are shared, read-only, by every session.

Anything a user changes (a pruned copy, new tokens, a new head) is a new model kept in that
user's `st.session_state`, never written back into this cache. Each session model remembers the
Python expression that rebuilds it, so a page's "code to reproduce" can start from it.
"""
from __future__ import annotations

import threading

import streamlit as st

import models

from .long_run import long_run

_LOCKS: dict[str, threading.Lock] = {}  # one per name: two sessions asking for SmolLM2 convert it once,
_LOCKS_LOCK = threading.Lock()         # while MiniLM loads beside it (the warm-up never blocks another model)
_LOADED: set[str] = set()  # names this server process has loaded once (the cache may still have let one go)
_PRELOADED: dict[str, models.WorkbenchModel] = {}  # loaded by app.warm_up, until shared_model takes them


def _lock_for(name: str) -> threading.Lock:
    with _LOCKS_LOCK:  # held only to find the lock, never across a load
        return _LOCKS.setdefault(name, threading.Lock())


def preload(name: str) -> models.WorkbenchModel | None:
    """Load ``name`` once, outside any page (app.warm_up); ``shared_model`` then returns it at once.

    None when a page has loaded it already (then it is warm).
    """
    with _lock_for(name):
        if name in _LOADED and name not in _PRELOADED:
            return None
        if name not in _PRELOADED:
            _PRELOADED[name] = models.load_model(name)
        _LOADED.add(name)
        return _PRELOADED[name]


@st.cache_resource(show_spinner=False, max_entries=6)  # get_model shows what is loading
def shared_model(name: str) -> models.WorkbenchModel:
    with _lock_for(name):
        model = _PRELOADED.pop(name, None) or models.load_model(name)
    _LOADED.add(name)
    return model


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


NEXT_CHOICE = "_model_choice_next_run"  # a model the sidebar picks at the start of the next run


def keep_session_model(label: str, model: models.WorkbenchModel, recipe: str | None = None,
                       select: str = "now") -> str:
    """Keep ``model`` as ``label`` (``label (2)``… if taken) and pick it in the sidebar.

    ``select="now"`` from a button callback (callbacks run before the sidebar is drawn, so its choice may
    still be set); ``select="next run"`` from a page's body, after the sidebar was drawn: the sidebar picks
    it when the page reruns (``st.rerun()``).
    """
    name, n = label, 1
    while name in session_models():
        n += 1
        name = f"{label} ({n})"
    add_session_model(name, model, recipe)
    st.session_state["model_choice" if select == "now" else NEXT_CHOICE] = name
    return name


def model_recipe(name: str) -> str:
    """Python expression that gives the model called ``name`` (shared: ``load_model(name)``)."""
    recipe = _recipes().get(name)
    if recipe:
        return recipe
    if name in session_models():
        return f"...  # {name!r} was made in this app session; rebuild it as that page's code shows"
    return f"load_model({name!r})"


def get_model(name: str, container=None) -> models.WorkbenchModel:
    """A session-owned model by that name, else the shared one.

    A shared model not loaded yet shows "Running: loading …" while it loads (a first conversion takes
    seconds) in ``container`` (default: where this is called); put it where the last model's results were,
    and they are replaced at once instead of standing there, greyed, as if they were this model's.
    Loading cannot be cancelled half-way: it makes no progress calls (see app/long_run.py).
    """
    own = session_models()
    if name in own:
        return own[name]
    if name in _LOADED:
        return shared_model(name)
    with long_run(f"loading {name} (once per server; converting a checkpoint the first time takes longer)",
                  key="model_load", cancellable=False, keep_status=False, container=container):
        return shared_model(name)
