"""The app's pages in navigation order. Adding a page is one line here plus its module in pages/."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageEntry:
    file: str        # module in the top-level pages/ folder
    title: str
    icon: str
    url_path: str


PAGES: list[PageEntry] = [
    PageEntry("attention.py", "Attention", "🎯", "attention"),
    PageEntry("hidden_states.py", "Hidden states", "🧬", "hidden-states"),
]
