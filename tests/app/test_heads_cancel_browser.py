"""In headless Chromium: a pruning curve on the Heads page shows its progress, Cancel stops it midway, and the
page stays usable with the model unchanged (issue 18, bug 2, as "How we will know" asks).

AppTest reproduces the click exactly (tests/app/test_long_runs.py); this runs the real frontend, so the status,
the bar and the button are drawn and clicked as a person would. A tiny Llama with 8 layers x 8 heads makes a
curve of 19 steps, long enough to cancel on a 2-core machine.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.app.streamlit_server import completed_runs, main_text, streamlit_server, wait_until_idle
from tests.browser_support import block_external_requests, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"


def open_tab(page, name: str) -> None:
    tab = page.get_by_role("tab", name=name)
    tab.click()
    page.wait_for_function("t => t.getAttribute('aria-selected') === 'true'", arg=tab.element_handle(), timeout=10_000)


def test_cancel_a_pruning_curve_midway_in_the_browser(tmp_path):
    from playwright.sync_api import sync_playwright

    make_checkpoint("llama", tmp_path, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                    hidden_size=64)
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"smollm2": str(tmp_path)})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            outside = block_external_requests(page)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.goto(f"{url}/heads?model=smollm2")
            completed_runs(page)
            wait_until_idle(page, timeout_ms=180_000)
            open_tab(page, "Pruning curve")
            slider = page.get_by_test_id("stMain").get_by_role("slider", name="Prune per step (% of heads)")
            slider.focus()
            page.keyboard.press("Home")  # 5 % of 64 heads per step, up to 90 %: 19 steps
            wait_until_idle(page, after_interaction=True)
            open_tab(page, "Pruning curve")
            page.get_by_role("button", name="Compute the pruning curve").click()
            page.wait_for_function("() => document.body.innerText.includes('step 3 of 19')", timeout=120_000,
                                   polling=50)
            main = main_text(page)
            assert "Running: pruning curve: 5% of the heads per step up to 90%" in main
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "heads_pruning_curve_running.png"))
            page.get_by_role("button", name="Cancel", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('Cancelled: pruning curve')",
                                   timeout=60_000, polling=100)
            wait_until_idle(page)
            main = main_text(page)
            assert "as heads are pruned" not in main and "Running:" not in main  # no curve, nothing running
            page.screenshot(path=str(SCREENSHOTS / "heads_pruning_curve_cancelled.png"))
            # the model is unchanged: the sidebar still has it, with all 64 heads to mask
            chosen = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").input_value()
            assert chosen.startswith("smollm2") and "−" not in chosen
            # and the page is usable: mask a head from the box, its effect is drawn
            open_tab(page, "Effect of the mask")
            box = page.get_by_test_id("stMain").get_by_role("combobox", name="Masked heads")
            box.click()
            box.fill("L7.H7")
            page.get_by_role("option", name="L7.H7", exact=True).click()
            wait_until_idle(page, after_interaction=True)
            page.wait_for_function("() => document.body.innerText.includes('How much each head')", timeout=60_000)
            assert not outside, f"requests left the machine: {outside}"
        finally:
            browser.close()


def test_cancel_exact_patching_midway_in_the_browser(tmp_path):
    """Interventions: exact patching on a tiny Llama (8 layers x 8 heads) over ~56 tokens is hundreds of patched
    runs in many chunks; Cancel after the first chunks stops it, no exact map is drawn, and the next run works."""
    from playwright.sync_api import sync_playwright

    from models import load_model

    make_checkpoint("llama", tmp_path, num_hidden_layers=8, num_attention_heads=8, num_key_value_heads=4,
                    hidden_size=128)
    model = load_model(str(tmp_path))
    clause = "the cat sat on the mat . "
    clean = clause
    while len(model.run(clean + clause + "and").tokens[0]) <= 56:
        clean += clause
    clean += "and"
    corrupted = clean.replace("cat", "dog", 1)
    env = {"WORKBENCH_TINY_MODELS": json.dumps({"smollm2": str(tmp_path)})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            outside = block_external_requests(page)
            page.goto(f"{url}/interventions?model=smollm2")
            completed_runs(page)
            wait_until_idle(page, timeout_ms=180_000)
            for label, value, commit in (("Clean prompt", clean, "Control+Enter"),
                                         ("Corrupted prompt (same number of tokens)", corrupted, "Control+Enter"),
                                         ("Answer (one token; the clean prompt's)", "cat", "Enter"),
                                         ("Wrong answer (one token; the corrupted prompt's)", "dog", "Enter")):
                box = page.get_by_test_id("stMain").get_by_role("textbox", name=label, exact=True)
                box.fill(value)
                box.press(commit)
                wait_until_idle(page, after_interaction=True)
            page.wait_for_function("() => document.body.innerText.includes('Attribution patching (first-order')",
                                   timeout=120_000)
            page.get_by_role("button", name=re.compile(r"Run exact patching")).click()
            # the second chunk's report: the run is under way and far from done
            page.wait_for_function("() => /residual stream \\(block input\\): [1-9]\\d* of \\d+ patched runs/.test(document.body.innerText)",
                                   timeout=120_000, polling=50)
            assert "Running: exact patching:" in main_text(page)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOTS / "interventions_patching_running.png"))
            page.get_by_role("button", name="Cancel", exact=True).click()
            page.wait_for_function("() => document.body.innerText.includes('Cancelled: exact patching')",
                                   timeout=60_000, polling=100)
            wait_until_idle(page)
            main = main_text(page)
            assert "Exact: metric of each patched run" not in main and "Running:" not in main
            assert "Correlation of exact and attribution patching" not in main
            page.screenshot(path=str(SCREENSHOTS / "interventions_patching_cancelled.png"))
            chosen = page.get_by_test_id("stSidebar").get_by_role("combobox", name="Model").input_value()
            assert chosen.startswith("smollm2") and "−" not in chosen
            # usable: the estimate is still drawn, and the Run button is back
            assert "Attribution patching (first-order estimate)" in main
            assert page.get_by_role("button", name=re.compile(r"Run exact patching")).is_visible()
            assert not outside, f"requests left the machine: {outside}"
        finally:
            browser.close()
