"""In headless Chromium, as a person would: upload images and recordings on the Images & audio page, good
and bad, and compare models on an image, a recording and a text, downloading the table as CSV.

The server is the app as the README starts it, with the real embedded models (vit-digits,
whisper-tiny.en, minilm-sentiment, smollm2) and no network; the browser is Debian's Chromium with
every non-local request blocked. AppTest cannot upload through the real file uploader or click a
download, so these run the real frontend. Screenshots go to artifacts/screenshots/.
"""
from __future__ import annotations

import csv
import re
import shutil
import time
from pathlib import Path

import pytest

from analysis.compare_report import REPEAT_BUDGET_SECONDS
from tests.app.streamlit_server import completed_runs, main_text, streamlit_server, wait_until_idle
from tests.browser_support import block_external_requests, collect_console_errors, launch_chromium, requires_chromium

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "artifacts" / "screenshots"
IMAGES, SPEECH = ROOT / "sample_data" / "images", ROOT / "sample_data" / "speech"
ERROR_BOX = "[data-testid='stAlertContentError']"
EXCEPTION_BOX = "[data-testid='stException']"
SERVER_FAILURES = ("Traceback", "Uncaught app exception")
RUN_TIMEOUT_MS = 120_000  # whisper's first load and a smollm2 generation on a 2-core machine
DRAW_TIMEOUT_MS = 30_000  # the browser drawing what a finished run sent


@pytest.fixture(scope="module")
def app():
    """One server and one browser for the module; every test opens its own page (its own session)."""
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with streamlit_server() as (url, log), sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            yield url, log, browser
        finally:
            browser.close()
    server_log = log.read_text()
    for needle in SERVER_FAILURES:
        assert needle not in server_log, server_log[-3000:]


@pytest.fixture
def open_page(app, request):
    """Open a page of the app at ``path`` in a fresh browser tab; afterwards nothing may have left the machine.

    If the test failed, the page as it was goes to artifacts/screenshots/failed_<test>.png.
    """
    url, _log, browser = app
    opened, failed_before = [], request.session.testsfailed

    def _open(path: str):
        page = browser.new_page(viewport={"width": 1400, "height": 1600}, accept_downloads=True)
        blocked, errors = block_external_requests(page), collect_console_errors(page)
        opened.append((page, blocked, errors))
        page.goto(f"{url}/{path}")
        wait_until_idle(page, timeout_ms=RUN_TIMEOUT_MS)
        completed_runs(page)  # start counting script runs
        return page

    yield _open
    for page, blocked, errors in opened:
        if request.session.testsfailed > failed_before:
            page.screenshot(path=str(SCREENSHOTS / f"failed_{request.node.name}.png"), full_page=True)
        page.close()
        assert not blocked, f"the page tried to reach the network: {blocked}"
        # the page's own URL makes the frontend probe <path>/_stcore/... once and get 404 (see test_browser_e2e)
        assert not [e for e in errors if not e.startswith("console.error: Failed to load resource")], errors


# --- acting as a person -------------------------------------------------------------------------------------

def _after_rerun(page, action, settled=None) -> None:
    """Do ``action`` (a click, a key press, an upload) and wait for the script run it starts to finish.

    A rerun that takes a few milliseconds (a selectbox change, a download) can finish inside one React
    render, so the app root's run state never visibly flips and no run is counted. For those, ``settled()``
    says the action has visibly taken effect; a short grace then lets a run that is starting show itself.
    """
    before = completed_runs(page)
    action()
    deadline = time.monotonic() + RUN_TIMEOUT_MS / 1000
    while completed_runs(page) <= before:
        if settled is not None and settled():
            page.wait_for_timeout(1_000)
            break
        assert time.monotonic() < deadline, "the action started no script run within the time limit"
        page.wait_for_timeout(100)
    wait_until_idle(page, timeout_ms=RUN_TIMEOUT_MS)


def choose(page, label: str, option: str) -> None:
    """Pick ``option`` in the main area's selectbox ``label``: open it, type to filter, click the option."""
    box = page.get_by_test_id("stMain").get_by_role("combobox", name=label, exact=True)
    box.click()
    box.fill(option)
    # chosen: the list has closed and the box shows the option (while open it shows the typed filter too)
    _after_rerun(page, lambda: page.get_by_role("option", name=option, exact=True).click(),
                 settled=lambda: page.get_by_role("listbox").count() == 0 and box.input_value() == option)
    assert box.input_value() == option


def pick_radio(page, option: str) -> None:
    radio = page.get_by_test_id("stMain").get_by_test_id("stRadio")
    _after_rerun(page, lambda: radio.get_by_text(option, exact=True).click(),
                 settled=lambda: radio.get_by_role("radio", name=option, exact=True).is_checked())


def upload(page, path: Path) -> None:
    _after_rerun(page, lambda: page.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(path)))
    uploaded = page.get_by_test_id("stFileChipName").all_inner_texts()
    assert uploaded == [path.name], uploaded


# --- reading the page ---------------------------------------------------------------------------------------

def dataframes(page):
    return page.get_by_test_id("stMain").get_by_test_id("stDataFrame")


def table(page, index: int = 0, count: int = 1) -> list[dict[str, str]]:
    """The rows of the page's ``index``-th st.dataframe (of ``count``), from the accessible table glide-data-grid
    keeps in its canvas. (Streamlit 1.67 gives a keyed dataframe no ``st-key-`` class, so tests find it by place.)
    """
    assert dataframes(page).count() == count, dataframes(page).count()
    grid = dataframes(page).nth(index).locator("table[role='grid']")
    grid.wait_for(state="attached", timeout=DRAW_TIMEOUT_MS)
    header = [h.strip() for h in grid.locator("thead th").all_inner_texts()]
    rows = [[c.strip() for c in row.locator("td").all_inner_texts()] for row in grid.locator("tbody tr").all()]
    return [dict(zip(header, row)) for row in rows]


def plotly_title(page, key: str) -> str:
    """The title of the drawn plotly chart with this key (waits until plotly has drawn its SVG)."""
    chart = page.locator(f".st-key-{key} .js-plotly-plot")
    chart.locator(".main-svg").first.wait_for(state="visible", timeout=DRAW_TIMEOUT_MS)
    return (chart.locator(".gtitle").text_content() or "").strip()


def errors_shown(page) -> list[str]:
    return page.locator(ERROR_BOX).all_inner_texts() + page.locator(EXCEPTION_BOX).all_inner_texts()


def assert_no_error(page, what: str) -> None:
    assert not errors_shown(page), f"{what}: {errors_shown(page)}"
    text = main_text(page)
    for needle in ("Traceback", "Unexpected error", "Exception"):
        assert needle not in text, f"{what} shows {needle!r}:\n{text[:2000]}"


def assert_one_clear_error(page, *phrases: str) -> str:
    """Exactly one error box, in words (no traceback, no exception class), naming the problem; the page is up."""
    try:  # on a busy machine the box can paint a moment after the run is seen to settle
        page.wait_for_selector(ERROR_BOX, timeout=60_000)
    except Exception:
        pass  # the assertion below says what is shown instead
    shown = page.locator(ERROR_BOX).all_inner_texts()
    assert len(shown) == 1, shown
    message = shown[0]
    assert any(p in message for p in phrases), message
    assert not page.locator(EXCEPTION_BOX).count(), page.locator(EXCEPTION_BOX).all_inner_texts()
    for needle in ("Traceback", "Unexpected error", "Error:", "File \""):
        assert needle not in main_text(page), main_text(page)[:2000]
    assert page.get_by_test_id("stMain").locator("h1, h2").first.inner_text().strip() == "Images & audio"
    return message


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def edit_distance(a: list[str], b: list[str]) -> int:
    """Word-level Levenshtein distance, written out here so the test does not lean on the code it checks."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, y in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (x != y))
    return row[-1]


def reference_transcript(clip: str) -> str:
    with open(SPEECH / "transcripts.csv") as handle:
        return next(row["text"] for row in csv.DictReader(handle) if row["file"] == clip)


def shot(page, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


# --- the tests ----------------------------------------------------------------------------------------------

def test_image_upload_good_and_bad(open_page, tmp_path):
    page = open_page("images-audio")
    assert page.get_by_test_id("stMain").get_by_role("combobox", name="Model", exact=True).input_value() == "vit-digits"

    drawing = tmp_path / "my_drawing.png"
    shutil.copy(IMAGES / "digit_7.png", drawing)
    choose(page, "Image", "Upload a file…")
    assert "Upload an image to begin." in main_text(page)
    assert not dataframes(page).count()  # nothing predicted before an upload
    upload(page, drawing)
    assert_no_error(page, "a PNG upload")
    uploaded_rows = table(page)
    assert [list(r) for r in uploaded_rows] == [["label", "score"]] * 5, uploaded_rows
    assert {r["label"] for r in uploaded_rows} <= {str(d) for d in range(10)}
    assert uploaded_rows[0]["label"] == "7", uploaded_rows  # the drawing is digit_7.png (every sample reads right)
    scores = [float(r["score"]) for r in uploaded_rows]
    assert scores == sorted(scores, reverse=True) and 0 < sum(scores) <= 1.0001, scores
    assert plotly_title(page, "va_patch_overlay") == "[CLS] attention, layer 3, head 0 (my_drawing.png)"
    assert page.locator(".st-key-va_patch_overlay .heatmaplayer").count() == 1  # the attention grid is drawn
    shot(page, "media_image_upload.png")

    not_an_image = tmp_path / "holiday.png"
    not_an_image.write_text("These are my holiday notes, not a picture.\n")
    upload(page, not_an_image)
    message = assert_one_clear_error(page, "not an image", "cannot be read", "could not be read")
    assert "Pillow" in message or "image" in message.lower(), message
    assert not dataframes(page).count() and not page.locator(".st-key-va_patch_overlay").count()
    shot(page, "media_image_bad_upload.png")

    # the session goes on: the same digit from the samples gives the very table the upload gave
    choose(page, "Image", "digit_7.png")
    assert_no_error(page, "the digit_7.png sample after a bad upload")
    assert table(page) == uploaded_rows
    assert plotly_title(page, "va_patch_overlay") == "[CLS] attention, layer 3, head 0 (digit_7.png)"


def test_audio_upload_good_and_bad(open_page, tmp_path):
    page = open_page("images-audio")
    choose(page, "Model", "whisper-tiny.en")
    assert_no_error(page, "whisper-tiny.en on its first sample")
    choose(page, "Audio", "Upload a file…")
    assert "Upload a recording to begin." in main_text(page)

    recording = tmp_path / "my_recording.mp3"  # an MP3 under another name: no reference transcript to lean on
    shutil.copy(SPEECH / "formats" / "clip_01.mp3", recording)
    upload(page, recording)
    assert_no_error(page, "an MP3 upload")
    text = main_text(page)
    assert "Transcript" in text and "Spoken text:" not in text
    transcript = page.locator("[data-testid='stHeadingWithActionElements']:has-text('Transcript')"
                              " >> xpath=ancestor::div[contains(@class,'stElementContainer')][1]"
                              "/following-sibling::div[1]").inner_text().strip()
    spoken = words(reference_transcript("clip_01.wav"))
    heard = words(transcript)
    assert len(set(spoken) & set(heard)) >= 0.5 * len(set(spoken)), (transcript, spoken)  # lossy MP3, tiny model
    assert plotly_title(page, "va_alignment") == "Output tokens x audio time (cross-attention)"
    assert page.locator(".st-key-va_alignment .heatmaplayer").count() >= 1
    token_rows = table(page)
    assert len(token_rows) >= len(spoken) // 2, token_rows
    assert page.locator("[data-testid='stAudio']").count() == 1
    shot(page, "media_audio_upload.png")

    empty = tmp_path / "silence.wav"
    empty.write_bytes(b"")
    upload(page, empty)
    assert_one_clear_error(page, "empty", "no samples", "zero length")
    assert not page.locator(".st-key-va_alignment").count()
    shot(page, "media_audio_bad_upload.png")

    choose(page, "Audio", "clip_02.wav")
    assert_no_error(page, "the clip_02.wav sample after a bad upload")
    assert "Spoken text: please turn off the lights" in main_text(page)
    assert plotly_title(page, "va_alignment") == "Output tokens x audio time (cross-attention)"


def _compare_and_download(page, expected_models: list[str], expected_input: str) -> list[dict[str, str]]:
    """Click Compare, read the Results table, download the CSV and check it holds the same rows."""
    assert not dataframes(page).count()
    _after_rerun(page, lambda: page.get_by_role("button", name="Compare", exact=True).click())
    assert_no_error(page, f"comparing on {expected_input}")
    assert "Results" in main_text(page)
    rows = table(page, 0, count=2)  # results, then the attention summary
    assert [r["model"] for r in rows] == expected_models, rows
    assert f"Input: {expected_input}" in main_text(page)  # once, above the table
    assert all(float(r["latency (ms)"]) > 0 for r in rows), rows  # in view even beside a long generated text
    summary = table(page, 1, count=2)
    assert [r["model"] for r in summary] == expected_models, summary
    assert all(float(r["entropy_last"]) > 0 and int(r["layers"]) > 0 for r in summary), summary
    assert page.locator(".st-key-cmp_profile .js-plotly-plot .scatterlayer .trace").count() == len(expected_models)
    button = page.get_by_role("button", name="Download CSV")
    assert button.is_visible()
    with page.expect_download(timeout=30_000) as info:
        _after_rerun(page, button.click, settled=lambda: True)  # a download button reruns the script, quickly
    download = info.value
    assert download.suggested_filename == "comparison.csv"
    with open(download.path(), newline="") as handle:
        exported = list(csv.DictReader(handle))
    assert exported and {"model", "latency_ms", "answer", "input"} <= set(exported[0]), exported[:1]
    assert [r["model"] for r in exported] == expected_models
    assert [r["answer"].strip() for r in exported] == [r["answer"] for r in rows]
    assert all(float(r["latency_ms"]) > 0 for r in exported), exported
    assert all(r["input"] == expected_input and r["error"] == "" for r in exported), exported  # the input in full
    assert [r["timing"] for r in exported] == [r["timing"] for r in rows]
    for model in expected_models:  # the agreement matrix, one column per model
        assert [float(r[f"agreement with {model}"]) for r in exported if r["model"] == model] == [1.0], exported
    assert_no_error(page, f"the results on {expected_input} after the download")
    latency = page.get_by_test_id("stMain").get_by_test_id("stMarkdownContainer").filter(has_text="Latency (log scale)")
    assert latency.count() == 1, latency.all_inner_texts()  # no stale copy of the last run's charts left behind
    chart = page.locator(".st-key-cmp_latency .js-plotly-plot")
    assert chart.evaluate("plot => plot.layout.xaxis.type") == "log"
    assert chart.evaluate("plot => plot.data.map(t => t.name)") == ["load", "first call", "steady state (median)"]
    assert table(page, 0, count=2) == rows  # the rerun keeps the results
    return rows


def test_compare_image_audio_and_text(open_page):
    page = open_page("compare")
    pick_radio(page, "image")
    models = page.get_by_test_id("stMain").get_by_test_id("stMultiSelect").locator("[data-tag] span[title]")
    assert models.all_inner_texts() == ["image-classification · vit-digits"]
    rows = _compare_and_download(page, ["image-classification · vit-digits"], "china.jpg")
    assert rows[0]["answer"] in {str(d) for d in range(10)}
    shot(page, "compare_image.png")

    pick_radio(page, "audio")
    choose(page, "Audio", "clip_02.wav")
    rows = _compare_and_download(page, ["automatic-speech-recognition · whisper-tiny.en"], "clip_02.wav")
    spoken = set(words(reference_transcript("clip_02.wav")))
    assert len(spoken & set(words(rows[0]["answer"]))) >= 0.5 * len(spoken), rows[0]["answer"]
    # scored against the clip's committed transcript: word edits / reference words
    heard, said = words(rows[0]["answer"]), words(reference_transcript("clip_02.wav"))
    assert float(rows[0]["WER"]) == pytest.approx(edit_distance(said, heard) / len(said), abs=0.005), rows[0]
    assert rows[0]["timing"] == "first call", rows[0]  # a generating model: called once, and it says so
    shot(page, "compare_audio.png")

    pick_radio(page, "text")
    assert models.all_inner_texts() == ["text-classification · minilm-sentiment", "text-generation · smollm2"]
    sentence = page.get_by_test_id("stMain").get_by_role("textbox", name="Text")
    sentence.fill("I really loved this film, the acting was wonderful.")
    _after_rerun(page, lambda: sentence.press("Control+Enter"), settled=lambda: True)
    rows = _compare_and_download(page, ["text-classification · minilm-sentiment", "text-generation · smollm2"],
                                 "I really loved this film, the acting was wonderful.")
    assert rows[0]["answer"].upper() == "POSITIVE", rows
    assert rows[1]["answer"].strip(), rows
    # a generating model runs once; a classifier is repeated unless its first call alone fills the repeat budget
    # (on a loaded 2-core machine it can)
    assert rows[1]["timing"] == "first call", rows
    assert rows[0]["timing"].startswith("median of ") or float(rows[0]["latency (ms)"]) > 1000 * REPEAT_BUDGET_SECONDS
    shot(page, "compare_text.png")
