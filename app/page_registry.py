"""The app's pages in navigation order. Adding a page is one line here plus its module in pages/."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    file: str        # module in the top-level pages/ folder
    title: str
    icon: str        # an emoji or ":material/name:" (Material Symbols ship with Streamlit; emoji need a font)
    url_path: str


PAGES: list[PageEntry] = [
    PageEntry("attention.py", "Attention", ":material/visibility:", "attention"),
    PageEntry("hidden_states.py", "Hidden states", ":material/stacked_line_chart:", "hidden-states"),
    PageEntry("attribution.py", "Attribution", ":material/target:", "attribution"),
    PageEntry("vocabulary.py", "Vocabulary", ":material/dictionary:", "vocabulary"),
    PageEntry("task_heads.py", "Task heads", ":material/model_training:", "task-heads"),
    PageEntry("heads.py", "Heads", ":material/grid_view:", "heads"),
    PageEntry("interventions.py", "Interventions", ":material/science:", "interventions"),
    PageEntry("vision_audio.py", "Images & audio", ":material/graphic_eq:", "images-audio"),
    PageEntry("compare.py", "Compare", ":material/compare_arrows:", "compare"),
    PageEntry("datasets.py", "Datasets", ":material/dataset:", "datasets"),
    PageEntry("lessons.py", "Lessons", ":material/school:", "lessons"),
]
