"""Per-session memory for the pages: results kept between reruns, widget values kept valid and kept across pages.

Streamlit reruns a page top to bottom on every click. A trace of SmolLM2 at 512 tokens takes
seconds and holds ~280 MB of attention, so each session keeps only its last few results, in
its own `st.session_state` (never shared: another session's text must not show up here).

Streamlit forgets a widget's value as soon as a run does not draw it: after a visit to another
page, typed text, the view and the head were back at their defaults. Widgets that hold a page's
view take their key from ``keep(key)``, which keeps the value for the whole session (Streamlit's
``persist_state="session"``) and tells the browser the value again when the widget comes back.
``keep`` is the one place that decides how a view survives, and it also binds the value to the URL
(``bind="query-params"``: the widget's key is the query parameter), so the address bar always holds the
view and a copied link (app/view_link.py) opens the same view on another machine. A value that is not
valid for the widget any more (a head the model does not have) is dropped from the URL by Streamlit.
"""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from typing import Any, TypeVar

import streamlit as st

T = TypeVar("T")
_MISSING = object()


def keep(key: str) -> dict[str, Any]:
    """Keyword arguments for a widget whose value is part of the page's view: ``st.radio(..., **keep("x_view"))``.

    The value survives page changes and model switches for the whole session, and lives in the URL.
    Widgets set up this way
    are given their defaults through ``keep_valid``/``clamp`` or their own ``value``/``index``, as before.
    """
    return {"key": key, "persist_state": "session", "bind": "query-params"}


def keep_per_model(key: str, model_key: str, options: Sequence[Any]) -> None:
    """Before a multiselect of one model's parts (heads to mask) is drawn: its value belongs to that model.

    Another model starts with what it had last in this session (nothing at first), and the value is
    written through session state, so the box in the browser shows exactly the heads the page uses,
    also after a run that did not draw the box (a folder still to be typed in the sidebar).
    """
    owners = st.session_state.setdefault(f"_per_model_{key}", {})
    owner = st.session_state.get(f"_per_model_{key}_owner")
    if owner == model_key:
        keep_valid_many(key, options)
        st.session_state.setdefault(key, [])
        return
    if owner is not None and key in st.session_state:
        owners[owner] = list(st.session_state[key])
    allowed = set(options)
    st.session_state[key] = [v for v in owners.get(model_key, []) if v in allowed]
    st.session_state[f"_per_model_{key}_owner"] = model_key


def _memo_store(namespace: str) -> OrderedDict:
    return st.session_state.setdefault(f"_memo_{namespace}", OrderedDict())


def memo_lookup(namespace: str, key: Hashable, default: Any = None) -> Any:
    """What ``session_memo(namespace, key, ...)`` keeps, without computing it (results made only on a click)."""
    store = _memo_store(namespace)
    if key not in store:
        return default
    store.move_to_end(key)
    return store[key]


def session_memo(namespace: str, key: Hashable, compute: Callable[[], T], max_entries: int = 2) -> T:
    """``compute()`` once per ``key`` in this session; keep the ``max_entries`` most recent results."""
    value = memo_lookup(namespace, key, _MISSING)
    if value is not _MISSING:
        return value
    store = _memo_store(namespace)
    value = compute()
    store[key] = value
    while len(store) > max_entries:
        store.popitem(last=False)
    return value


def keep_valid(key: str, options: Sequence[Any], default: Any) -> None:
    """Before a selectbox/radio is drawn: give it ``default`` if it has no value or a stale one.

    Switching models changes the options (layers, heads); a stale value would otherwise raise.
    Widgets set up this way take no default of their own (Streamlit warns when both are given),
    and the state is written only when it changes.
    """
    if st.session_state.get(key, _MISSING) not in options:
        st.session_state[key] = default


def keep_valid_many(key: str, options: Sequence[Any]) -> None:
    """Before a multiselect is drawn: keep only remembered values that are still options."""
    if key in st.session_state:
        allowed = set(options)
        kept = [v for v in st.session_state[key] if v in allowed]
        if kept != list(st.session_state[key]):
            st.session_state[key] = kept


def clamp(key: str, low: int, high: int, default: int) -> None:
    """Before a slider is drawn: give it ``default``, or pull a remembered number back into [low, high]."""
    if key not in st.session_state:
        st.session_state[key] = default
        return
    value = st.session_state[key]
    fixed = min(max(value, low), high)
    if fixed != value:
        st.session_state[key] = fixed


def int_slider(container, label: str, low: int, high: int, key: str, default: int) -> int:
    """A slider over [low, high] that keeps a valid value across model switches.

    Streamlit refuses a slider whose ends are equal (a one-layer model); then the only value is
    shown as text instead.
    """
    if high <= low:
        container.caption(f"{label}: {low} (the only one)")
        return low
    clamp(key, low, high, default)
    return container.slider(label, low, high, **keep(key))
