"""models/ and analysis/ never import streamlit, app or pages: they work the same from a notebook.

Each module is imported on its own in a fresh interpreter and `sys.modules` is read afterwards,
so an indirect import counts too: `analysis` importing something from `app`, which imports
streamlit, is caught even though no file in analysis/ says `import streamlit`.

One `python -c` child does the work: it imports the heavy third-party libraries once (torch,
pandas, scipy, captum: ~85 fresh interpreters importing torch would take minutes on a 2-core
machine), checks that they loaded nothing forbidden, then forks once per core module. Each
fork imports its one module into that clean state and reports the forbidden modules present.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CORE = ("models", "analysis")
FORBIDDEN = ("streamlit", "app", "pages")  # top-level names; their submodules are forbidden too
# Third-party libraries the core needs, imported before forking so each fork does not pay for them.
PRELOAD = ("torch", "numpy", "pandas", "scipy.signal", "captum.attr", "tokenizers", "safetensors", "PIL.Image")

PROBE = r"""
import importlib, json, os, sys, traceback
forbidden, preload, modules, root = json.loads(sys.argv[1])

def loaded():
    return sorted(m for m in sys.modules if m.split(".")[0] in forbidden)

class Witness:
    # records the project lines that first ask for a forbidden module; finds nothing itself
    chain = None
    def find_spec(self, name, path=None, target=None):
        if Witness.chain is None and name.split(".")[0] in forbidden:
            Witness.chain = [f"{f.filename.removeprefix(root)}:{f.lineno}" for f in traceback.extract_stack()
                             if f.filename.startswith(root)] + [name]
        return None

for name in preload:
    importlib.import_module(name)
results = {"<preload>": {"loaded": loaded(), "core": sorted(m for m in sys.modules if m.split(".")[0] in
                                                             ("models", "analysis"))}}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one import, one report, no cleanup handlers
        os.close(read)
        sys.meta_path.insert(0, Witness())
        try:
            importlib.import_module(module)
            report = {"loaded": loaded(), "first": Witness.chain}
        except BaseException:
            report = {"error": traceback.format_exc()[-3000:]}
        data = json.dumps(report).encode()
        while data:
            data = data[os.write(write, data):]
        os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    results[module] = json.loads(b"".join(chunks) or b'{"error": "the child died without a report"}')
print(json.dumps(results))
"""


def core_modules(package: str) -> list[str]:
    """Every module under `package` as a dotted name; a package is its `__init__`."""
    names = []
    for path in sorted((ROOT / package).rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = [m for package in CORE for m in core_modules(package)]


def imports_in_fresh_interpreter(modules: list[str]) -> dict[str, dict]:
    """For each module, imported alone after PRELOAD in a fresh interpreter: {"loaded": [...]} or {"error": ...}."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps([FORBIDDEN, PRELOAD, modules, str(ROOT) + os.sep])], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"the import probe failed:\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def imports() -> dict[str, dict]:
    return imports_in_fresh_interpreter(MODULES)


def test_every_core_module_is_found():
    assert {"models", "analysis", "models.workbench_model", "models.families.bert",
            "analysis.attribution", "analysis.attribution.text"} <= set(MODULES)


def test_the_preloaded_libraries_bring_nothing_forbidden_and_no_core_module(imports):
    # otherwise every fork would start with them loaded, and the per-module checks would prove nothing
    assert imports["<preload>"] == {"loaded": [], "core": []}


@pytest.mark.parametrize("module", MODULES)
def test_core_module_never_loads_streamlit_app_or_pages(imports, module):
    report = imports[module]
    assert "error" not in report, f"importing {module} failed:\n{report.get('error')}"
    loaded = report["loaded"]
    shown = [m for m in loaded if not m.startswith("streamlit.")]
    more = f" and {len(loaded) - len(shown)} streamlit submodules" if len(shown) < len(loaded) else ""
    assert not loaded, (f"importing {module} loads {shown}{more}, first asked for by "
                        f"{' -> '.join(report['first'] or ['?'])}; models/ and analysis/ must work without the UI")
