"""In headless Chromium at a classroom's 1,280 x 720: bertviz's model view shows every head inside its frame.

bertviz draws the model view 970 px wide whatever the frame; beside the sidebar at 1,280 px the frame is
narrower, and heads 10-11 of minilm (12 heads) fell outside it with no scrollbar (issue 18, bug 5). A tiny
BERT with 12 heads stands in for minilm; the check is geometric: every head's label and thumbnail lies
inside the iframe's own viewport.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.app.streamlit_server import completed_runs, streamlit_server, wait_for_run_after, wait_until_idle
from tests.app.test_browser_e2e import bertviz_frame
from tests.browser_support import block_external_requests, launch_chromium, requires_chromium
from tests.tiny_models import save_tokenizer, word_tokenizer

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"

# every element of the model view's SVG, in the iframe's viewport: the head labels and the thumbnails
EXTENT = """() => {
  const svg = document.querySelector('#vis svg');
  if (!svg) return null;
  const boxes = [...svg.querySelectorAll('text, rect')].map(e => e.getBoundingClientRect()).filter(b => b.width > 0);
  return {right: Math.max(...boxes.map(b => b.right)), bottom: Math.max(...boxes.map(b => b.bottom)),
          width: window.innerWidth, height: window.innerHeight,
          heads: [...svg.querySelectorAll('text')].map(t => t.textContent)};
}"""


def twelve_head_bert(folder: Path) -> None:
    import transformers

    config = transformers.BertConfig(vocab_size=64, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
                                     intermediate_size=37, max_position_embeddings=64, pad_token_id=0)
    transformers.BertModel(config).save_pretrained(folder)
    save_tokenizer(word_tokenizer(["[PAD]", "[CLS]", "[SEP]", "[MASK]"], "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"),
                   folder, {"pad_token": "[PAD]", "cls_token": "[CLS]", "sep_token": "[SEP]", "unk_token": "[UNK]"})


def test_model_view_fits_every_head_at_1280_by_720(tmp_path):
    from playwright.sync_api import sync_playwright

    twelve_head_bert(tmp_path)
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"minilm": str(tmp_path)})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            outside = block_external_requests(page)
            page.goto(f"{url}/?text=the+cat+sat+on+the+mat+.")
            completed_runs(page)
            wait_until_idle(page)
            before = completed_runs(page)
            page.get_by_role("radio", name="Model view (bertviz)").click(force=True)
            wait_for_run_after(page, before, timeout_ms=120_000)
            wait_until_idle(page)
            frame = bertviz_frame(page)
            frame.wait_for_selector("#vis svg rect", timeout=60_000)
            page.wait_for_timeout(500)
            extent = frame.evaluate(EXTENT)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            view = page.locator("iframe").last
            view.scroll_into_view_if_needed()
            page.screenshot(path=str(SCREENSHOTS / "attention_model_view_1280x720.png"))
            assert {str(h) for h in range(12)} <= set(extent["heads"])
            assert extent["right"] <= extent["width"] + 0.5, f"heads cut off on the right: {extent}"
            assert extent["bottom"] <= extent["height"] + 0.5, f"layers cut off at the bottom: {extent}"
            assert not outside, f"requests left the machine: {outside}"
        finally:
            browser.close()
