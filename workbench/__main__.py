"""`python -m workbench ...`, the same as the `workbench` console script."""
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent.parent)
# `python -m` puts the working directory first on sys.path: a models/ folder there would hide this project's
if sys.path[:1] != [ROOT]:
    sys.path.insert(0, ROOT)

from workbench.cli import main  # noqa: E402

raise SystemExit(main())
