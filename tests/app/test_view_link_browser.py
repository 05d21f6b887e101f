"""In headless Chromium: "Link to this view" reopens the same view, with the same numbers, in a fresh browser
context (issue 18: state in the URL, the link round trip). Every view widget is bound to the URL (app/state.keep),
so the link is the address bar's query string, shown whole with a copy button in the sidebar."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from tests.app.streamlit_server import completed_runs, streamlit_server, wait_for_run_after, wait_until_idle
from tests.browser_support import block_external_requests, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
TEXT = "a dog barked loudly and then ran away quickly ."

# the attention heatmap's numbers as the browser holds them
HEATMAP = """() => {
  const plots = [...document.querySelectorAll('.js-plotly-plot')].filter(p => p.data && p.data[0].z);
  return plots.length ? plots[0].data[0].z : null;
}"""


def _view(page) -> dict:
    page.wait_for_function(HEATMAP, timeout=120_000)  # plotly draws after the script run settles
    main = page.get_by_test_id("stMain")
    return {"text": main.get_by_role("textbox").first.input_value(),
            "layer": main.get_by_test_id("stSliderThumbValue").first.inner_text(),
            "heatmap": page.evaluate(HEATMAP)}


def test_a_copied_link_opens_the_same_view_elsewhere(tmp_path):
    from playwright.sync_api import sync_playwright

    (tmp_path / "bert").mkdir()
    make_checkpoint("bert", tmp_path / "bert")
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"minilm": str(tmp_path / "bert")})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            outside = block_external_requests(page)
            page.goto(url)  # the Attention page is the app's first page
            wait_until_idle(page)
            main = page.get_by_test_id("stMain")
            box = main.get_by_role("textbox").first
            done = completed_runs(page)
            box.fill(TEXT)
            box.press("Control+Enter")
            wait_for_run_after(page, done)
            wait_until_idle(page)
            slider = main.get_by_role("slider").first
            slider.focus()
            done = completed_runs(page)
            page.keyboard.press("End")  # the last layer, away from the default (the first)
            wait_for_run_after(page, done)
            wait_until_idle(page)
            done = completed_runs(page)
            main.get_by_role("tab", name="Heatmap").click()  # only the open tab is drawn, and the link names it
            wait_for_run_after(page, done)
            wait_until_idle(page)
            before = _view(page)
            assert before["text"] == TEXT and before["layer"] == "1" and before["heatmap"]

            page.get_by_test_id("stSidebar").get_by_text("Link to this view").click()
            link = page.get_by_test_id("stSidebar").get_by_test_id("stCode").inner_text().strip()
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "view_link_sidebar.png"))
            query = parse_qs(urlparse(link).query)
            assert query["attention_free"] == [TEXT] and query["attention_layer"] == ["1"]
            assert query["attention_tab"] == ["Heatmap"]

            fresh = browser.new_context(viewport={"width": 1280, "height": 720}).new_page()  # no shared session
            block_external_requests(fresh)
            fresh.goto(link)
            wait_until_idle(fresh)
            after = _view(fresh)
            fresh.screenshot(path=str(SCREENSHOTS / "view_link_reopened.png"))
            assert after == before  # same text, same layer, the same attention numbers
            assert not outside
        finally:
            browser.close()
