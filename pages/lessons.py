"""Lessons page: guided, offline lessons; each step sets up a live view of a model, explains it, asks a question.

Thin: the lessons are data (app/lessons/catalog.py), their views computed by app/lessons/views.py, a step drawn by
app/lessons/render.py.
"""
from __future__ import annotations

import streamlit as st

from app.lessons import available_lessons
from app.lessons.render import render_step, reset_step
from app.state import keep, keep_valid

lessons = {lesson.key: lesson for lesson in available_lessons()}
st.header("Lessons")
with st.container(key="secondary_lesson_choice"):  # hidden in presenter mode, like the sidebar
    keep_valid("lesson", list(lessons), next(iter(lessons)))
    key = st.selectbox("Lesson", list(lessons), format_func=lambda k: f"{lessons[k].title} — {lessons[k].summary}",
                       on_change=reset_step, **keep("lesson"))
render_step(lessons[key])
