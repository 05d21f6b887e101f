"""What a lesson is: a model and steps. A step names a view and its settings; the view is computed live."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Step:
    title: str
    view: str                       # a key of app.lessons.views.VIEWS
    explain: str                    # what the class sees; {names} are filled with numbers the view computed
    question: str                   # one question for the class
    params: dict[str, Any] = field(default_factory=dict)  # the view's settings: text, layer, head, image, ...


@dataclass(frozen=True)
class Lesson:
    key: str                        # stable id, used in the URL
    title: str
    model: str                      # the model every step runs (a lesson is about a particular model)
    summary: str
    steps: tuple[Step, ...]
