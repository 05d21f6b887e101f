"""Streamlit entry for browser tests: the real app, with tiny random checkpoints in place of the embedded models.

`WORKBENCH_TINY_MODELS` holds JSON {name: folder}; every other name loads as usual. Used as
`python -m streamlit run tests/app/tiny_app.py`, so several sessions on several models stay
fast on a 2-core machine while the server, the browser and the concurrency are real.
"""
from __future__ import annotations

import json
import os
import runpy
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import models  # noqa: E402

if not getattr(models.load_model, "_tiny", False):  # patch once per process; the script reruns per interaction
    folders = json.loads(os.environ["WORKBENCH_TINY_MODELS"])
    real_load = models.load_model

    def load_tiny(name, task=None):
        if str(name) in folders:
            return models.load_folder(folders[str(name)], name=str(name), task=task)
        return real_load(name, task=task)

    load_tiny._tiny = True
    models.load_model = load_tiny

runpy.run_path(str(ROOT / "app" / "main.py"), run_name="__main__")
