"""What every model page does first: take the sidebar's model, load it, or stop with a message."""
from __future__ import annotations

import streamlit as st

from models import WorkbenchModel

from .guard import shown_errors
from .warm_up import start_warm_up
from .model_kinds import is_text_to_text
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
    start_warm_up()  # after this page's own model: the warm-up never makes the first page wait for a lock
    st.sidebar.caption("native: every feature" if model.is_native else
                       "bridge over transformers: hidden states, attention, hooks, head masks and importance")
    return name, model


def stop_if_text_to_text(name: str, model: WorkbenchModel, page: str) -> None:
    """A page that reads one stack of heads says plainly that it cannot read an encoder-decoder text model."""
    if is_text_to_text(model):
        st.info(f"{name} is a text-to-text model (an encoder and a decoder). The {page} page reads encoder-only "
                "and decoder-only text models; the Attention page shows this one's source, output and "
                "cross-attention.")
        st.stop()
