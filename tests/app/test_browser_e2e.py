"""End to end: the app as the README starts it, every page in headless Chromium, offline.

The server is `python -m streamlit run app/main.py --server.port <free> --server.headless true`
with HF_HUB_OFFLINE=1 and the real embedded models; the browser is Debian's Chromium with every
non-local request blocked. Each registered page must render with no exception or error box,
the bertviz view must draw its SVG inside its iframe, and screenshots go to
artifacts/screenshots/ for people to look at.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from app.page_registry import PAGES
from models.embedded import EMBEDDED_MODELS
from tests.app.streamlit_server import (completed_runs, main_text, streamlit_server, wait_for_run_after,
                                        wait_until_idle)
from tests.browser_support import block_external_requests, collect_console_errors, launch_chromium, requires_chromium

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
ERROR_SELECTOR = "[data-testid='stException'], [data-testid='stAlertContentError']"
SERVER_FAILURES = ("Traceback", "torch.classes", "Tried to instantiate class", "Uncaught app exception")

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]


def page_url(base: str, index: int, url_path: str, query: str = "") -> str:
    return f"{base}/{'' if index == 0 else url_path}{query}"  # the default page lives at "/"


def assert_no_error_on(page, what: str) -> None:
    shown = [element.inner_text() for element in page.query_selector_all(ERROR_SELECTOR)]
    assert not shown, f"{what} shows errors: {shown}"
    text = main_text(page)
    for needle in ("Traceback", "Unexpected error", "Exception"):
        assert needle not in text, f"{what} shows {needle!r}:\n{text[:2000]}"


# Opened at a page's own URL (/hidden-states), Streamlit's frontend first probes for a server
# under that path (/hidden-states/_stcore/health, .../host-config), gets 404 and falls back to
# "/". Those two probes are expected; any other failed request is a bug.
BASE_PATH_PROBES = ("/_stcore/health", "/_stcore/host-config")


def record_failed_responses(page) -> list[str]:
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return failed


def unexpected(errors: list[str], failed: list[str]) -> tuple[list[str], list[str]]:
    """Console errors and failed requests that are not the base-path probes above."""
    bad_requests = [f for f in failed if not f.endswith(BASE_PATH_PROBES)]
    bad_errors = [e for e in errors if not e.startswith("console.error: Failed to load resource")]
    return bad_errors, bad_requests


def bertviz_frame(page, timeout_s: float = 60):
    """The iframe holding a bertviz (or sparse) view: the srcdoc frame with a #vis element.

    Polled: after a rerun Streamlit swaps the iframe, and the new one parses its srcdoc a moment later.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        for frame in page.frames:
            try:
                if frame != page.main_frame and frame.query_selector("#vis"):
                    return frame
            except Exception:  # a frame detached while we looked at it
                continue
        if time.monotonic() > deadline:
            raise AssertionError(f"no attention view iframe among {[f.url for f in page.frames]}")
        page.wait_for_timeout(200)


def test_every_page_renders_offline_in_chromium():
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with streamlit_server() as (url, log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 2000})
            blocked, errors = block_external_requests(page), collect_console_errors(page)
            failed = record_failed_responses(page)
            for index, entry in enumerate(PAGES):
                page.goto(page_url(url, index, entry.url_path))
                wait_until_idle(page)
                assert page.inner_text("[data-testid='stMain'] h1, [data-testid='stMain'] h2").strip(), entry.title
                assert_no_error_on(page, entry.title)
                if entry.file == "attention.py":
                    frame = bertviz_frame(page)
                    frame.wait_for_function(
                        "() => { const s = document.querySelector('#vis svg');"
                        " return s !== null && s.querySelectorAll('line').length >= 100; }", timeout=60_000)
                    assert frame.eval_on_selector("#vis svg", "s => s.querySelectorAll('text').length") >= 2 * 10
                    # a middle layer makes a better picture than the embeddings' layer 0
                    before = completed_runs(page)
                    page.get_by_role("slider", name="Layer").focus()
                    page.keyboard.press("ArrowRight")
                    page.keyboard.press("ArrowRight")
                    wait_for_run_after(page, before)
                    wait_until_idle(page)
                    bertviz_frame(page).wait_for_function(
                        "() => document.querySelectorAll('#vis svg line').length >= 100", timeout=60_000)
                    assert_no_error_on(page, "Attention at layer 2")
                page.screenshot(path=str(SCREENSHOTS / f"app_{entry.url_path}.png"))

            # The lens needs an LM head: open Hidden states on SmolLM2 from a shared link.
            hidden = next(i for i, e in enumerate(PAGES) if e.file == "hidden_states.py")
            page.goto(page_url(url, hidden, PAGES[hidden].url_path,
                               "?model=smollm2&text=The+capital+of+France+is+Paris.+The+capital+of+Italy+is"))
            wait_until_idle(page)
            assert_no_error_on(page, "Hidden states on smollm2")
            page.wait_for_selector("[data-testid='stPlotlyChart'] .main-svg", timeout=60_000)
            assert "Logit lens" in main_text(page) and "predicts" in main_text(page)
            page.screenshot(path=str(SCREENSHOTS / "app_logit_lens_smollm2.png"))
        finally:
            browser.close()
        server_log = log.read_text()
    assert not blocked, f"the app tried to reach the network: {blocked}"
    bad_errors, bad_requests = unexpected(errors, failed)
    assert not bad_errors and not bad_requests, (bad_errors, bad_requests)
    for needle in SERVER_FAILURES:
        assert needle not in server_log, server_log[-3000:]


def test_file_watcher_on_does_not_crash_on_torch_classes():
    """Even with the watcher turned back on, importing torch must not crash it (streamlit#10992)."""
    from playwright.sync_api import sync_playwright

    with streamlit_server(extra_args=["--server.fileWatcherType", "poll"]) as (url, log), \
            sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page()
            block_external_requests(page)
            page.goto(url)
            wait_until_idle(page)
            assert_no_error_on(page, "Attention with the file watcher on")
            page.wait_for_timeout(3000)  # the watcher scans sys.modules after the run
        finally:
            browser.close()
        server_log = log.read_text()
    for needle in SERVER_FAILURES:
        assert needle not in server_log, server_log[-3000:]


def test_translator_shows_the_alignment_of_a_typed_number():
    """Pick the embedded text-to-text model in the sidebar, type a number, see the cross-attention alignment."""
    from playwright.sync_api import sync_playwright

    translator = next(name for name, r in EMBEDDED_MODELS.items() if r.modality == "text" and r.task == "seq2seq-lm")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as (url, log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            blocked = block_external_requests(page)
            page.goto(url)
            completed_runs(page)
            wait_until_idle(page)
            before = completed_runs(page)
            page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").click()
            page.get_by_role("option", name=re.compile(f"^{re.escape(translator)} ")).click()
            wait_for_run_after(page, before)
            wait_until_idle(page)
            before = completed_runs(page)
            source = page.get_by_role("textbox", name="Source text")
            source.fill("4071")
            source.press("Control+Enter")  # Streamlit commits a text area on Ctrl+Enter or blur
            wait_for_run_after(page, before)
            wait_until_idle(page)
            assert_no_error_on(page, "Attention on the translator")
            assert "Output: four thousand seventy one" in main_text(page)
            chart = page.get_by_test_id("stPlotlyChart").first
            chart.locator(".main-svg").first.wait_for(timeout=60_000)
            rows = chart.locator(".ytick text").evaluate_all("els => els.map(e => e.textContent)")
            columns = chart.locator(".xtick text").evaluate_all("els => els.map(e => e.textContent)")
            assert rows[::-1] == ["0:four", "1:thousand", "2:seventy", "3:one", "4:</s>"], rows
            assert columns == ["0:4", "1:0", "2:7", "3:1", "4:</s>"], columns  # "</s>" drawn, not read as a tag
            assert chart.locator(".heatmaplayer image, .hm image").count() >= 1  # the cells are drawn
            chart.scroll_into_view_if_needed()
            chart.screenshot(path=str(SCREENSHOTS / "attention_text_to_text_alignment.png"))
            page.screenshot(path=str(SCREENSHOTS / "app_attention_text_to_text.png"), full_page=True)
        finally:
            browser.close()
        server_log = log.read_text()
    assert not blocked, f"the app tried to reach the network: {blocked}"
    for needle in SERVER_FAILURES:
        assert needle not in server_log, server_log[-3000:]
