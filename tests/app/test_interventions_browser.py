"""In headless Chromium: type a clean and a corrupted prompt on the Interventions page, run exact patching,
click a cell of the residual-stream map, and see that patched run's prediction (its metric equals
`patched_run` computed here on the same weights).

AppTest cannot click a plotly chart, so this runs the real server (tiny Llama in place of smollm2) and
the real browser, and clicks where plotly itself says the cell is.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from analysis.patching import patched_run
from models import load_model
from tests.app.streamlit_server import (completed_runs, main_text, streamlit_server, wait_for_caption,
                                        wait_for_run_after, wait_until_idle)
from tests.browser_support import block_external_requests, collect_console_errors, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CLEAN, CORRUPTED, ANSWER, WRONG = "the cat sat on the mat and", "the dog sat on a mat and", "cat", "dog"

# opened at /interventions, Streamlit's frontend first probes for a server under that path and gets 404
BASE_PATH_PROBES = ("/_stcore/health", "/_stcore/host-config")

# the page position of a heatmap cell, from the plot's own axes (x = column, y = layer)
CELL_CENTRE = """(el, [column, layer]) => {
  const gd = el.closest('.js-plotly-plot') || el;
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(column), y: box.top + ya._offset + ya.l2p(layer)};
}"""


def _after_rerun(page, action) -> None:
    before = completed_runs(page)
    action()
    wait_for_run_after(page, before, timeout_ms=180_000)
    wait_until_idle(page, after_interaction=True)


def _type(page, label: str, value: str, commit: str) -> None:
    box = page.get_by_test_id("stMain").get_by_role("textbox", name=label, exact=True)
    box.fill(value)
    _after_rerun(page, lambda: box.press(commit))  # a text area commits on Ctrl+Enter, a text input on Enter


def test_clicking_a_patching_cell_shows_that_patched_run(tmp_path):
    from playwright.sync_api import sync_playwright

    make_checkpoint("llama", tmp_path, seed=1, initializer_range=0.3)
    model = load_model(str(tmp_path))
    expected = patched_run(model, CLEAN, CORRUPTED, "resid_pre", ANSWER, WRONG, layer=0, index=1)
    default_cell = patched_run(model, CLEAN, CORRUPTED, "resid_pre", ANSWER, WRONG, layer=1, index=6)
    assert f"{expected.metric:.4f}" != f"{default_cell.metric:.4f}"  # the click must change what is shown

    env = {"WORKBENCH_TINY_MODELS": json.dumps({"smollm2": str(tmp_path)})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1200})
            outside, errors = block_external_requests(page), collect_console_errors(page)
            failed: list[str] = []
            page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
            page.goto(f"{url}/interventions?model=smollm2")
            completed_runs(page)
            wait_until_idle(page, timeout_ms=180_000)
            _type(page, "Clean prompt", CLEAN, "Control+Enter")
            _type(page, "Corrupted prompt (same number of tokens)", CORRUPTED, "Control+Enter")
            _type(page, "Answer (one token; the clean prompt's)", ANSWER, "Enter")
            _type(page, "Wrong answer (one token; the corrupted prompt's)", WRONG, "Enter")
            wait_for_caption(page, "they differ at position")
            run_button = page.get_by_role("button", name=re.compile(r"Run exact patching"))
            _after_rerun(page, run_button.click)
            page.wait_for_function("() => document.body.innerText.includes('Exact: metric of each patched run')",
                                   timeout=120_000)
            wait_for_caption(page, f": metric {default_cell.metric:.4f} (clean")

            heatmap = page.locator("[data-testid='stMain'] .js-plotly-plot").first  # exact, residual stream
            heatmap.scroll_into_view_if_needed()
            heatmap.wait_for(state="visible", timeout=60_000)
            point = heatmap.evaluate(CELL_CENTRE, [1, 0])
            _after_rerun(page, lambda: page.mouse.click(point["x"], point["y"]))
            wait_for_caption(page, f"residual stream (block input) of layer 0 at position 1:cat→dog: metric "
                                   f"{expected.metric:.4f} (clean", timeout_ms=120_000)
            text = main_text(page)
            assert f"restored {expected.restored:.1%}" in text
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "interventions_patching.png"), full_page=True)
            assert not outside, f"requests left the machine: {outside}"
            assert not [f for f in failed if not f.endswith(BASE_PATH_PROBES)], failed
            assert not [e for e in errors if not e.startswith("console.error: Failed to load resource")], errors
            assert not page.query_selector_all("[data-testid='stException'], [data-testid='stAlertContentError']")
            assert "Traceback" not in text and "Unexpected error" not in text
        finally:
            browser.close()
