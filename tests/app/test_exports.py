"""CSV exports neutralise what a spreadsheet would run as a formula (OWASP "CSV injection"); numbers stay numbers."""
from __future__ import annotations

import io

import pandas as pd

from app.exports import neutralise_formulas, safe_frame_csv


def test_text_that_starts_a_formula_gets_a_quote_and_numbers_are_left_alone():
    frame = pd.DataFrame({"answer": ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\t=x", "fine", "a=b", None],
                          "score": [-0.5, 1.0, -2.0, 0.0, 1.0, 2.0, 3.0, 4.0]})
    frame["=bad header"] = "ok"
    out = neutralise_formulas(frame)
    assert list(out["answer"][:7]) == ["'=1+1", "'+SUM(A1)", "'-2+3", "'@cmd", "'\t=x", "fine", "a=b"]
    assert pd.isna(out["answer"][7]) and list(out["score"]) == list(frame["score"])  # -0.5 is a number, not text
    assert list(out.columns) == ["answer", "score", "'=bad header"]
    assert frame["answer"][0] == "=1+1"  # a copy: the page's own table is not changed
    back = pd.read_csv(io.BytesIO(safe_frame_csv(frame)))
    assert back["answer"][0] == "'=1+1" and back["score"][0] == -0.5
