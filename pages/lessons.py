"""Lessons page: guided, offline lessons; each step sets up a live view of a model, explains it, asks a question.

Thin: the lessons are data (app/lessons/catalog.py), their views computed by app/lessons/views.py, a step drawn by
app/lessons/render.py.
"""
from __future__ import annotations

import streamlit as st

from app.lessons import available_lessons
from app.lessons.render import render_step, reset_step
from app.state import keep

lessons = {lesson.key: lesson for lesson in available_lessons()}
st.header("Lessons")
with st.container(key="secondary_lesson_choice"):  # hidden in presenter mode, like the sidebar
    # a default of its own, not keep_valid: on a session's first run that would overwrite the lesson a link asks for
    # the URL holds the shown label (the title), so a link reads ?lesson=Heads+specialise
    key = st.selectbox("Lesson", list(lessons), index=0, on_change=reset_step, format_func=lambda k: lessons[k].title,
                       **keep("lesson"))
    st.caption(lessons[key].summary)
render_step(lessons[key])
