"""Errors become messages on the page; the app and every other session stay up."""
from __future__ import annotations

import contextlib
import traceback
from typing import Iterator

import streamlit as st

from models.errors import WorkbenchError

from .markdown_text import escape_markdown


@contextlib.contextmanager
def shown_errors(what: str = "") -> Iterator[None]:
    """Show a WorkbenchError's message; show anything else as an unexpected error with details folded."""
    try:
        yield
    except WorkbenchError as error:
        # messages carry model names, paths and tokens a user typed: never rendered as Markdown
        st.error(escape_markdown(f"{what + ': ' if what else ''}{error}"))
    except Exception as error:  # keep the page alive whatever happened inside
        st.error(escape_markdown(f"Unexpected error{' while ' + what if what else ''}: {type(error).__name__}: {error}"))
        with st.expander("Details"):
            st.code(traceback.format_exc())
