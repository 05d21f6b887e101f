"""Guided lessons: each a model and a sequence of steps; each step sets up a live view, explains it, asks a question.

``lesson.py`` says what a lesson is, ``catalog.py`` holds the lessons (data only), ``views.py`` computes and draws
each kind of view from the model, and ``render.py`` draws a step with its keyboard navigation.
"""
from .catalog import LESSONS, available_lessons
from .lesson import Lesson, Step

__all__ = ["LESSONS", "Lesson", "Step", "available_lessons"]
