"""Long work on a page: a status that says what runs, a progress bar with the time so far and an estimate, and Cancel.

Streamlit runs a page's script in a thread. A click on any button asks for a new run, and the running script
stops at its next Streamlit call (here: the next progress update) with Streamlit's own ``RerunException``.
Cancel is such a button: its callback notes which work was cancelled, so the next run says so and waits for a
click instead of starting that work again, and everything else on the page stays as it was. Nothing is left
half-done: results are stored only once the work returns (``app.state.session_memo``), head masks are scoped
to a context manager, and pruning makes a new model, so a cancelled run leaves the models unchanged.

Work that makes no progress calls (one forward pass, loading a model) cannot be stopped half-way; it shows a
status or a spinner only.
"""
from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator

import streamlit as st

CANCELLED = "_long_run_cancelled"   # session state: {work key: what was cancelled}
ESTIMATE_AFTER = 2.0                # seconds before an estimate of the time left is shown

Progress = Callable[[float, str], None]


def request_cancel(key: str, what: str) -> None:
    """Cancel's callback (it runs before the next run): remember that ``key``'s work was cancelled."""
    st.session_state.setdefault(CANCELLED, {})[key] = what


def was_cancelled(key: str) -> bool:
    """True after Cancel was clicked for ``key``'s work, until ``start_again(key)``."""
    return key in st.session_state.get(CANCELLED, {})


def start_again(key: str) -> None:
    """Forget a cancel: the work may start (a Run button's callback, or a click handled in the page)."""
    st.session_state.get(CANCELLED, {}).pop(key, None)


def show_cancelled(key: str, container=None) -> bool:
    """Say that ``key``'s work was cancelled (True), or nothing (False)."""
    what = st.session_state.get(CANCELLED, {}).get(key)
    if what is None:
        return False
    (container or st).warning(f"Cancelled: {what}. Nothing was changed; start it again when you are ready.")
    return True


def progress_text(message: str, fraction: float, elapsed: float) -> str:
    """"batch 2 of 5 · 4 s, about 6 s left": the message, the time so far, and an estimate once one makes sense."""
    text = f"{message} · {elapsed:.0f} s" if message else f"{elapsed:.0f} s"
    if elapsed >= ESTIMATE_AFTER and 0.02 <= fraction < 1.0:
        text += f", about {elapsed * (1 - fraction) / fraction:.0f} s left"
    return text


@contextlib.contextmanager
def long_run(what: str, key: str, cancellable: bool = True, keep_status: bool = True,
             container=None) -> Iterator[Progress]:
    """Show "Running: what…" with a progress bar and a Cancel button while the body runs; yield ``progress``.

    ``progress(fraction, message)`` is what the analysis functions take. When the body returns, the status
    turns into "Done: what (3.2 s)" (folded) or disappears (``keep_status=False``); when it raises an error,
    "Failed: what" (the page's ``shown_errors`` then says why). A Cancel click ends the run from inside
    ``progress``; this function lets Streamlit's exception through untouched.

    ``container``: where the status goes, a container (or placeholder) the page draws in every run, so
    that a status drawn in one run and not the next does not move what follows: the browser would take
    moved tabs and expanders for new ones and reset them to the first tab, folded.
    """
    slot = (container or st).empty()  # replaces what ``container`` held (the last results) at once
    # a status straight in an st.empty breaks the browser's tree ("Bad delta path index 1"): a container between
    status = slot.container().status(f"Running: {what}…", expanded=True, state="running")
    # written into, not entered: leaving `with status` would mark it complete at once
    bar = status.progress(0.0, text="starting")
    cancel = status.empty()
    if cancellable:
        cancel.button("Cancel", key=f"{key}_cancel", on_click=request_cancel, args=(key, what),
                      help="Stops this computation; the page and the models stay as they were.")
    start = time.monotonic()

    def progress(fraction: float, message: str = "") -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        bar.progress(fraction, text=progress_text(message, fraction, time.monotonic() - start))

    start_again(key)
    try:
        yield progress
    except Exception:
        cancel.empty()
        status.update(label=f"Failed: {what}", state="error", expanded=False)
        raise
    cancel.empty()
    if keep_status:
        status.update(label=f"Done: {what} ({time.monotonic() - start:.1f} s)", state="complete", expanded=False)
    else:
        slot.empty()


@contextlib.contextmanager
def busy(what: str) -> Iterator[None]:
    """A spinner with the time so far for work that cannot report progress (one forward pass); it shows only
    if the work takes more than half a second, so quick answers do not flicker."""
    with st.spinner(f"{what}…", show_time=True):
        yield
