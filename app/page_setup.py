"""What every model page does first: take the sidebar's model, load it, or stop with a message."""
from __future__ import annotations

import streamlit as st

from models import WorkbenchModel

from .guard import shown_errors
from .model_cache import get_model
from .sidebar import selected_model_name


def selected_model_or_stop() -> tuple[str, WorkbenchModel]:
    """(name, model) for the sidebar's choice; otherwise an info or error message and st.stop()."""
    name = selected_model_name()
    if name is None:
        st.info("Type a folder or hub id in the sidebar.")
        st.stop()
    model = None
    loading = st.container()  # drawn every run, so a load's status never moves the page below it (nor resets its tabs)
    with shown_errors(f"loading {name}"):
        model = get_model(name, container=loading)
    if model is None:
        st.stop()
    st.sidebar.caption("native: every feature" if model.is_native else
                       "bridge over transformers: hidden states, attention, hooks, head masks and importance")
    return name, model
