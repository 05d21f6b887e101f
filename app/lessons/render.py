"""One lesson step on the page: where we are, the keys, the live view, what the class sees, and the question.

Previous and Next are buttons with keyboard shortcuts (← and →, Streamlit's ``shortcut=``), so a teacher with a
presenter remote or a keyboard never needs the mouse. The step number is a URL-bound widget (app.state.keep), so
a link opens the same step, and the step survives visits to other pages.
"""
from __future__ import annotations

import streamlit as st

from ..guard import shown_errors
from ..model_cache import get_model
from ..state import keep
from .lesson import Lesson
from .views import VIEWS

STEP = "lesson_step"
PREVIOUS_KEY, NEXT_KEY = "Left", "Right"


def _move(by: int, n_steps: int) -> None:
    """Button callback (runs before the step picker is drawn, so it may set the picker's value)."""
    st.session_state[STEP] = min(max(int(st.session_state.get(STEP, 1)) + by, 1), n_steps)


def reset_step() -> None:
    """A new lesson starts at its first step."""
    st.session_state[STEP] = 1


def render_step(lesson: Lesson) -> None:
    n = len(lesson.steps)
    with st.container(key="secondary_lesson_steps"):  # hidden in presenter mode: the keys move between steps
        # no keep_valid: on a session's first run it would overwrite the step a link (the URL) asks for
        number = int(st.radio("Step", list(range(1, n + 1)), index=0, horizontal=True,
                              format_func=lambda i: lesson.steps[i - 1].title, **keep(STEP)))
    step = lesson.steps[number - 1]
    title, back, forward = st.columns([6, 1, 1], vertical_alignment="center")
    title.subheader(f"{number}/{n} · {step.title}")
    back.button("Previous", key="lesson_previous", shortcut=PREVIOUS_KEY, on_click=_move, args=(-1, n),
                disabled=number == 1, help="Keyboard: ←")
    forward.button("Next", key="lesson_next", shortcut=NEXT_KEY, on_click=_move, args=(1, n), type="primary",
                   disabled=number == n, help="Keyboard: →")
    picture, words = st.columns([3, 2])
    facts = None
    with picture:
        model = None
        with shown_errors(f"loading {lesson.model}"):
            model = get_model(lesson.model, container=st.container())
        if model is not None:
            with shown_errors(f"computing “{step.title}”"):
                facts = VIEWS[step.view](lesson.model, model, dict(step.params))
    with words:
        if facts is not None:
            st.markdown(step.explain.format(**facts))
        st.markdown(f"**Question:** {step.question}")
        st.caption(f"Keys: ← previous · → next · computed live from {lesson.model}")
