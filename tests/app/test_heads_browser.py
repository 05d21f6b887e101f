"""In headless Chromium: clicking a cell of the Heads page's heatmap masks that head, clicking it again unmasks it.

AppTest cannot click a plotly chart, so this runs the real server (tiny Llama in place of
smollm2) and the real browser, and clicks where plotly itself says the cell is.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.streamlit_server import completed_runs, streamlit_server, wait_for_run_after, wait_until_idle
from tests.browser_support import block_external_requests, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

# the page position of a heatmap cell, from the plot's own axes
CELL_CENTRE = """(el, [head, layer]) => {
  const gd = el.closest('.js-plotly-plot') || el;
  const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis, box = gd.getBoundingClientRect();
  return {x: box.left + xa._offset + xa.l2p(head), y: box.top + ya._offset + ya.l2p(layer)};
}"""


def _masked_tags(page) -> list[str]:
    box = page.locator("[data-testid='stMultiSelect']").first
    return [t.strip() for t in box.locator("[data-tag] > span[title]").all_inner_texts()]


def _click_cell(page, layer: int, head: int) -> None:
    heatmap = page.locator(".js-plotly-plot").first
    heatmap.wait_for(state="visible", timeout=120_000)
    point = heatmap.evaluate(CELL_CENTRE, [head, layer])
    before = completed_runs(page)
    page.mouse.click(point["x"], point["y"])
    wait_for_run_after(page, before, timeout_ms=120_000)
    wait_until_idle(page, after_interaction=True)


def test_clicking_the_heatmap_toggles_a_head(tmp_path):
    from playwright.sync_api import sync_playwright

    make_checkpoint("llama", tmp_path, initializer_range=0.3)
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"smollm2": str(tmp_path)})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            outside = block_external_requests(page)
            page.goto(f"{url}/heads?model=smollm2")
            completed_runs(page)
            wait_until_idle(page, timeout_ms=180_000)
            assert _masked_tags(page) == []
            _click_cell(page, layer=1, head=2)
            page.wait_for_function("() => document.body.innerText.includes('L1.H2')", timeout=60_000)
            assert _masked_tags(page) == ["L1.H2"]
            _click_cell(page, layer=0, head=3)
            assert sorted(_masked_tags(page)) == ["L0.H3", "L1.H2"]
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "heads_two_masked.png"), full_page=True)
            _click_cell(page, layer=1, head=2)  # a second click on a masked head unmasks it
            assert _masked_tags(page) == ["L0.H3"]
            assert not outside, f"requests left the machine: {outside}"
        finally:
            browser.close()
