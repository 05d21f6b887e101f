"""In headless Chromium at 1,280 x 720: every lesson walked with the → key, with presenter mode off and on.

Each step must draw its chart; in presenter mode every tick label of it must be 18 px or more and its top within
the first 720 px (above the fold). Tiny random checkpoints stand in for the embedded models (tests/app/tiny_app.py);
the translator is the embedded one. Screenshots go to artifacts/screenshots/lesson_*.png.
"""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlencode

import pytest

import tests.tiny_models as tiny_models
from app.lessons import available_lessons
from tests.app.streamlit_server import completed_runs, main_text, streamlit_server, wait_for_run_after, wait_until_idle
from tests.app.test_lessons_page import LESSON_WORDS
from tests.browser_support import block_external_requests, collect_console_errors, launch_chromium, requires_chromium
from tests.tiny_modal_models import make_vit, make_whisper
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
CHART = ".st-key-lesson_chart"
TICKS = ".xtick text, .ytick text, .colorbar text"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folders = {name: tmp_path_factory.mktemp(name) for name in
               ("minilm", "smollm2", "minilm-sentiment", "vit-digits", "whisper-tiny.en")}
    words = tiny_models.WORDS
    tiny_models.WORDS = list(words) + LESSON_WORDS  # the "it" sentences in the tiny BERT's vocabulary
    try:
        make_checkpoint("bert", folders["minilm"])
    finally:
        tiny_models.WORDS = words
    make_checkpoint("llama", folders["smollm2"])
    make_checkpoint("bert-cls", folders["minilm-sentiment"], id2label={0: "negative", 1: "positive"},
                    label2id={"negative": 0, "positive": 1})
    make_vit(folders["vit-digits"], "vit-cls")
    make_whisper(folders["whisper-tiny.en"])
    env = {"WORKBENCH_TINY_MODELS": json.dumps({k: str(v) for k, v in folders.items()})}
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, _log):
        yield url


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        yield browser
        browser.close()


def chart_box(page) -> dict:
    return page.evaluate(f"""() => {{
        const chart = document.querySelector("{CHART} .js-plotly-plot");
        if (!chart) return null;
        const sizes = [...chart.querySelectorAll("{TICKS}")].map(e => parseFloat(getComputedStyle(e).fontSize));
        return {{top: chart.getBoundingClientRect().top + window.scrollY, ticks: sizes}};
    }}""")


@pytest.mark.parametrize("presenting", [False, True], ids=["plain", "presenter"])
@pytest.mark.parametrize("lesson", available_lessons(), ids=lambda item: item.key)
def test_walk_a_lesson_with_the_keyboard(server, browser, lesson, presenting):
    page = browser.new_page(viewport={"width": 1280, "height": 720})
    outside = block_external_requests(page)
    errors = collect_console_errors(page)
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    try:
        # a bound selectbox's URL value is its shown label: the lesson's title
        query = {"lesson": lesson.title, **({"presenter": "true"} if presenting else {})}
        page.goto(f"{server}/lessons?{urlencode(query)}")
        completed_runs(page)
        wait_until_idle(page)
        n = len(lesson.steps)
        for number, step in enumerate(lesson.steps, start=1):
            page.wait_for_function("t => document.querySelector(\"[data-testid='stMain']\").innerText.includes(t)",
                                   arg=f"{number}/{n} · {step.title}", timeout=120_000)
            page.wait_for_selector(f"{CHART} .js-plotly-plot", timeout=120_000)
            assert "Question:" in main_text(page)
            box = chart_box(page)
            assert box is not None, f"step {number}: no chart"
            if presenting:
                assert box["ticks"] and min(box["ticks"]) >= 18, f"step {number}: tick labels {box['ticks']}"
                assert box["top"] < 720, f"step {number}: the chart starts at {box['top']} px, below the fold"
                sidebar = page.query_selector("[data-testid='stSidebar']")
                assert sidebar is None or not sidebar.is_visible()
            page.screenshot(path=str(SCREENSHOTS / f"lesson_{lesson.key}_{number}{'_presenter' if presenting else ''}.png"))
            if number < n:
                done = completed_runs(page)
                page.locator("body").press("ArrowRight")  # the Next button's shortcut
                wait_for_run_after(page, done, timeout_ms=300_000)
                wait_until_idle(page)
        assert "Traceback" not in main_text(page)
        assert not outside, f"requests left the machine: {outside}"
        assert not [e for e in errors if "404" not in e], errors
        # the frontend probes _stcore/ under the page's path first (Streamlit's own, at any page URL), then the root
        assert not [url for url in missing if "/_stcore/" not in url], missing
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"lesson_{lesson.key}_failed.png"), full_page=True)
        raise
    finally:
        page.close()
