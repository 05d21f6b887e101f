"""The app asks the registry and the models' capabilities which model is which kind; it never restates it.

Read as source: no string in app/ or pages/ names an embedded model or a family, no page tells models
apart by a missing attribute, and the "code to reproduce" snippets are built in one module only.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from models.embedded import EMBEDDED_MODELS

ROOT = Path(__file__).resolve().parents[2]
UI_FILES = sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "pages").glob("*.py")])
# a lesson is about one particular model (Whisper's alignment, SmolLM2's induction heads), so the lessons' data
# names its models; the code that draws them (app/lessons/views.py, render.py) is checked like every UI file
LESSON_DATA = ROOT / "app" / "lessons" / "catalog.py"
FAMILIES = {"bert", "roberta", "distilbert", "gpt2", "llama", "mistral", "qwen2", "vit", "wav2vec2", "whisper"}
SNIPPETS = ROOT / "app" / "reproduce.py"


def strings(path: Path) -> list[tuple[int, str]]:
    """(line, text) of every string constant that is not a docstring, f-string parts included."""
    tree = ast.parse(path.read_text(), filename=str(path))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and node.body and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
    return [(node.lineno, node.value) for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings]


def test_the_ui_files_are_found():
    assert {"sidebar.py", "compare.py", "reproduce.py", "views.py", "render.py"} <= {p.name for p in UI_FILES}
    assert LESSON_DATA in UI_FILES


@pytest.mark.parametrize("path", [p for p in UI_FILES if p != LESSON_DATA], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_no_model_or_family_is_named(path):
    named = [(line, text) for line, text in strings(path)
             if text.strip().lower() in FAMILIES or any(name in text for name in EMBEDDED_MODELS)]
    assert not named, f"{path.name} names models or families: {named}; ask app.model_kinds or the capabilities"


@pytest.mark.parametrize("path", [*UI_FILES, *sorted((ROOT / "analysis").rglob("*.py"))],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_capabilities_not_guesses(path):
    source = path.read_text()
    for guess in ('getattr(model, "modality"', "getattr(model, 'modality'", 'hasattr(model, "greedy")'):
        assert guess not in source, f"{path.name}: {guess} -> model.modality / model.is_encoder_decoder"


@pytest.mark.parametrize("path", [p for p in UI_FILES if p != SNIPPETS], ids=lambda p: f"{p.parent.name}/{p.name}")
def test_code_to_reproduce_is_built_in_one_module(path):
    built = [(line, text) for line, text in strings(path) if "from models import" in text or "from analysis" in text]
    assert not built, f"{path.name} writes snippet code {built}; build it in app/reproduce.py"
