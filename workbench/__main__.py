"""`python -m workbench ...`, the same as the `workbench` console script."""
from .cli import main

raise SystemExit(main())
