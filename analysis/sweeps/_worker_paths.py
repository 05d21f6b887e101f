"""In a Ray worker, this project's packages come first on sys.path.

Ray starts workers in the driver's working directory and puts that directory first on their
sys.path, so a folder there named like one of our packages (a `models/` folder of checkpoints is
common) would be imported as an empty namespace package in place of ours. Imported first by
`analysis.sweeps`, which every actor imports to run a sweep.
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
PACKAGES = ("models", "analysis")


def in_ray_worker() -> bool:
    main = sys.modules.get("__main__")
    return "ray" in str(getattr(main, "__file__", "")) and "workers" in str(getattr(main, "__file__", ""))


def prefer_this_project() -> None:
    if not in_ray_worker():
        return
    if sys.path[:1] != [ROOT]:
        sys.path.insert(0, ROOT)
    shadow = sys.modules.get("models")
    if shadow is not None and getattr(shadow, "__file__", None) is None:  # a namespace package from the cwd
        for name in [n for n in sys.modules if n == "models" or n.startswith("models.")]:
            del sys.modules[name]


prefer_this_project()
