"""Streamlit entry point: `streamlit run app/main.py` from the repository root.

Pages live in the top-level `pages/` folder, one thin module each; st.navigation accepts
pages outside this script's folder.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # so pages can import models/, analysis/ and app/ without an install
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402
import torch  # noqa: E402

# Streamlit's file watcher, when it is on, walks sys.modules and reads each `__path__`;
# torch.classes answers any attribute by looking up a TorchScript class and raises
# RuntimeError (streamlit#10992, "Tried to instantiate class '__path__._path'").
# .streamlit/config.toml turns the watcher off; an empty path makes it safe when someone
# turns it back on (`--server.fileWatcherType auto`) or runs from another folder.
torch.classes.__path__ = []

from app import presenter  # noqa: E402
from app.page_registry import PAGES  # noqa: E402
from app.sidebar import render_sidebar  # noqa: E402

st.set_page_config(page_title="Transformer Workbench", page_icon="🔬", layout="wide")
presenter.install()  # figures of a session in presenter mode get projector-sized labels (app/presenter.py)

navigation = st.navigation([st.Page(str(ROOT / "pages" / page.file), title=page.title, icon=page.icon,
                                    url_path=page.url_path, default=(i == 0))
                            for i, page in enumerate(PAGES)], position=presenter.navigation_position())
render_sidebar()
presenter.render_toggle()
navigation.run()
