"""`workbench app [streamlit options]`: the README's `python -m streamlit run app/main.py`, from anywhere."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

# the project's own folder (editable or installed): app/main.py and .streamlit/config.toml live here
ROOT = Path(__file__).resolve().parent.parent


def app_command(extra: Sequence[str] = ()) -> list[str]:
    """The command that starts the app; ``extra`` goes to streamlit as given (``--server.port 8600``)."""
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "app" / "main.py"), *extra]


def run_app(extra: Sequence[str] = ()) -> int:
    command = app_command(extra)
    # streamlit reads .streamlit/config.toml (file watcher off, see app/main.py) from the working folder
    os.chdir(ROOT)
    if os.name == "posix":
        # replace this process, so stopping `workbench app` (Ctrl-C, SIGTERM) stops the server itself
        os.execv(command[0], command)
    return subprocess.call(command)  # pragma: no cover  (Windows has no real exec)
