"""In headless Chromium: Cancel stops a running sweep on the Datasets page, and Run resumes from the kept shards.

AppTest runs a script to its end, so it cannot press a button while a sweep runs; this drives the
real server (a tiny Llama in place of smollm2) and the real browser, as a person would.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.streamlit_server import completed_runs, streamlit_server, wait_for_caption, wait_until_idle
from tests.app.test_media_browser import choose
from tests.browser_support import block_external_requests, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def test_cancel_stops_a_sweep_and_run_resumes_it(tmp_path):
    from playwright.sync_api import sync_playwright

    make_checkpoint("llama", tmp_path / "llama")
    parts = tmp_path / "parts"
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"smollm2": str(tmp_path / "llama")}),
           "WORKBENCH_SWEEP_PARTS": str(parts)}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            outside = block_external_requests(page)
            page.goto(f"{url}/datasets?model=smollm2")
            completed_runs(page)
            wait_until_idle(page)
            choose(page, "Sweep", "Pruning curve (with random baseline)")
            slider = page.get_by_test_id("stMain").get_by_role("slider", name="Rows")
            slider.focus()
            page.keyboard.press("End")  # all 463 rows: 36 sweeps of 15 shards, long enough to cancel
            wait_until_idle(page, after_interaction=True)
            page.get_by_role("button", name="Run", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('run 3 of')", timeout=120_000, polling=50)
            page.get_by_role("button", name="Cancel", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('Cancelled. The shards finished')",
                                   timeout=60_000, polling=100)
            wait_until_idle(page)
            kept = len(list(parts.rglob("shard-*.parquet")))
            assert kept > 0
            assert "as heads are pruned" not in page.inner_text("[data-testid='stMain']")  # no result yet
            page.get_by_role("button", name="Run", exact=True).click()
            wait_for_caption(page, "reused", timeout_ms=300_000)
            wait_until_idle(page)
            caption = page.get_by_text("pruning-curve on 463 rows").inner_text()
            reused = int(caption.split(" reused")[0].rsplit(", ", 1)[1])
            assert reused >= kept
            page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "datasets_pruning_curve.png"), full_page=True)
            assert not outside, f"requests left the machine: {outside}"
        finally:
            browser.close()
