"""Eight people at once: eight browser sessions on one server, different models and inputs.

One Streamlit server (the real app, with tiny random checkpoints in place of the embedded
models so a 2-core machine keeps up) and one headless Chromium with eight separate browser
contexts. The sessions load together and act together; then each must show exactly the
numbers its own model, input, mask or pruned copy gives (computed here, outside the app),
and none of another session's. Finally two sessions on the shared models rerun on a new text
after the others masked and pruned heads: the shared models must be unchanged.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest

import models
from analysis.attention import MEAN_OF_LAYER, head_pattern
from app.summaries import heatmap_summary
from app.token_display import display_tokens
from tests.app.streamlit_server import main_text, streamlit_server, wait_for_caption, wait_until_idle
from tests.browser_support import block_external_requests, collect_console_errors, launch_chromium, requires_chromium
from tests.tiny_models import make_checkpoint

pytestmark = [requires_chromium, pytest.mark.browser]

SCREENSHOTS = Path(__file__).resolve().parents[2] / "artifacts" / "screenshots"
LAYER = 1  # masks act on a head's output, so their effect shows from the next layer on


@dataclass(frozen=True)
class Session:
    model: str
    text: str
    mask: str | None = None    # head to mask, as the page labels it ("L0.H1")
    prune: str | None = None   # head to prune into a session-owned copy


SESSIONS = [
    Session("minilm", "the cat sat on the mat ."),
    Session("minilm", "a dog barked loudly ."),
    Session("sre-minilm", "the cat sat on the mat ."),
    Session("sre-minilm", "who was it ? it was me ."),
    Session("smollm2", "the cat sat on the mat ."),
    Session("smollm2", "i love this film and then ran away"),
    Session("minilm", "the cat sat on the mat .", mask="L0.H1"),
    Session("smollm2", "a dog barked loudly .", prune="L1.H0"),
]


@pytest.fixture(scope="module")
def tiny_folders(tmp_path_factory) -> dict[str, Path]:
    """Three different tiny models under the embedded names; a wide init makes attention sharp and distinct."""
    folders = {}
    for seed, (name, kind) in enumerate([("minilm", "bert"), ("sre-minilm", "bert"), ("smollm2", "llama")]):
        folder = tmp_path_factory.mktemp(f"concurrent-{name}")
        make_checkpoint(kind, folder, seed=seed, initializer_range=0.5)
        folders[name] = folder
    return folders


def head_spec(label: str) -> dict[int, list[int]]:
    layer, head = label[1:].split(".H")
    return {int(layer): [int(head)]}


def expected_summary(folder: Path, session: Session, text: str | None = None) -> str:
    """The caption the Attention page shows for this session's heatmap (layer LAYER, mean of heads)."""
    model = models.load_folder(folder, name=session.model)
    if session.prune:
        model = model.prune_heads(head_spec(session.prune))
    if session.mask:
        with model.mask_heads(head_spec(session.mask)):
            trace = model.run(text or session.text)
    else:
        trace = model.run(text or session.text)
    weights = head_pattern(trace, LAYER, MEAN_OF_LAYER).numpy()
    return heatmap_summary(weights, display_tokens(trace.tokens[0]), f"Layer {LAYER}, mean of heads")


def captions(page) -> list[str]:
    """The page's own captions, in order (the sidebar's model caption is not one of them)."""
    return page.eval_on_selector_all("[data-testid='stMain'] [data-testid='stCaptionContainer']",
                                     "els => els.map(e => e.innerText)")


def select_layer(page, layer: int) -> None:
    slider = page.get_by_role("slider", name="Layer")
    slider.focus()
    for _ in range(layer):
        page.keyboard.press("ArrowRight")


def mask_head(page, label: str) -> None:
    """Open the ablation expander and pick exactly ``label`` (typing filters; Enter would pick every match)."""
    page.get_by_text("Ablate heads (this session only)").click()
    box = page.locator("[data-testid='stMultiSelect'] input")
    for attempt in range(3):  # the dropdown re-renders while it filters; retry a detached option
        box.click()
        box.fill(label)
        page.wait_for_timeout(500)
        try:
            page.get_by_role("option", name=label, exact=True).click(timeout=5_000)
            break
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    page.keyboard.press("Escape")


def set_text(page, text: str) -> None:
    area = page.locator("[data-testid='stTextArea'] textarea")
    area.fill(text)
    area.press("Control+Enter")  # Streamlit commits a text area on Ctrl+Enter or blur


def sidebar_model_options(page) -> list[str]:
    page.locator("[data-testid='stSidebar'] [data-testid='stSelectbox']").click()
    page.wait_for_selector("[role='option']")
    options = page.eval_on_selector_all("[role='option']", "els => els.map(e => e.innerText)")
    page.keyboard.press("Escape")
    return options


def test_eight_sessions_at_once_each_see_only_their_own_results(tiny_folders):
    from playwright.sync_api import sync_playwright

    expected = [expected_summary(tiny_folders[s.model], s) for s in SESSIONS]
    assert len(set(expected)) == len(SESSIONS), "the sessions must differ, or isolation proves nothing"
    env = {"WORKBENCH_TINY_MODELS": json.dumps({k: str(v) for k, v in tiny_folders.items()})}
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server("tests/app/tiny_app.py", env=env) as (url, log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            pages, blocked, errors = [], [], []
            for session in SESSIONS:  # separate contexts: separate cookies, separate Streamlit sessions
                page = browser.new_context(viewport={"width": 1300, "height": 1600}).new_page()
                blocked.append(block_external_requests(page))
                errors.append(collect_console_errors(page))
                pages.append(page)
            for page, session in zip(pages, SESSIONS):  # all eight load at once: goto does not wait for the run
                page.goto(f"{url}/?{urlencode({'model': session.model, 'text': session.text, 'attention_tab': 'Heatmap'})}",
                          wait_until="commit")  # the heatmap tab: its caption is each session's result
            for page in pages:
                wait_until_idle(page)
            for page, session in zip(pages, SESSIONS):  # then all act at once
                if session.mask or session.prune:
                    mask_head(page, session.mask or session.prune)
                else:
                    select_layer(page, LAYER)
            for page, session in zip(pages, SESSIONS):
                wait_until_idle(page, after_interaction=True)
                if session.prune:
                    page.get_by_role("button", name="Keep a pruned copy without these heads").click()
                    wait_until_idle(page, after_interaction=True)
                if session.mask or session.prune:
                    select_layer(page, LAYER)
                    wait_until_idle(page, after_interaction=True)

            for index, (page, session) in enumerate(zip(pages, SESSIONS)):
                try:
                    wait_for_caption(page, expected[index])
                except Exception:
                    pass  # the assertion below says what the page shows instead
                shown = captions(page)
                text = main_text(page)
                assert expected[index] in shown, f"session {index} ({session}) shows {shown}"
                others = [e for j, e in enumerate(expected) if j != index]
                assert not any(o in shown for o in others), f"session {index} shows another session's result"
                assert " ".join(display_tokens(models.load_folder(tiny_folders[session.model]).run(session.text).tokens[0])) \
                    .split()[1] in text
                if session.mask:
                    assert f"masked: {session.mask}" in shown[0]
                else:
                    assert "masked" not in shown[0]
                assert ("pruned: " + session.prune in shown[0]) if session.prune else "pruned" not in shown[0]
                page.screenshot(path=str(SCREENSHOTS / f"concurrent_session_{index}.png"))

            # The pruned copy lives in session 7 only; the shared smollm2 and minilm are unchanged.
            assert "smollm2 − 1 head" in " ".join(sidebar_model_options(pages[7]))
            for index in (0, 4):
                assert not any("− 1 head" in o for o in sidebar_model_options(pages[index]))
            new_text = "then a cat ran away quickly ."
            for index in (0, 4):
                set_text(pages[index], new_text)
            for index in (0, 4):
                plain = Session(SESSIONS[index].model, new_text)
                wait_for_caption(pages[index], expected_summary(tiny_folders[plain.model], plain))
        finally:
            browser.close()
        server_log = log.read_text()
    assert not any(blocked), blocked
    assert not any(e for e in errors if not all(x.startswith("console.error: Failed to load resource") for x in e)), errors
    assert "Traceback" not in server_log, server_log[-3000:]
