"""app.bertviz_offline: bertviz views as offline, compact, self-contained HTML."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:  # `pytest tests/app/...` without `python -m`
    sys.path.insert(0, str(REPO_ROOT))

from app.bertviz_offline import VENDOR_DIR, head_view_html, model_view_html, payload_size_bytes  # noqa: E402
from tests.browser_support import (  # noqa: E402
    block_external_requests,
    collect_console_errors,
    launch_chromium,
    requires_chromium,
)

SCREENSHOT_DIR = REPO_ROOT / "artifacts" / "screenshots"

SENTENCE = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", ".", "[SEP]", "it", "was", "happy", ".", "[SEP]"]


def random_attention(n_layers: int, n_heads: int, seq: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Per-layer [1, heads, seq, seq] softmax rows, as transformers returns them."""
    generator = torch.Generator().manual_seed(seed)
    return tuple(
        torch.softmax(2.0 * torch.randn(1, n_heads, seq, seq, generator=generator), dim=-1)  # (1, nh, T, T)
        for _ in range(n_layers)
    )


def structured_attention(n_layers: int, n_heads: int, seq: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    """Attention with visible patterns (previous token, self, [CLS]) for a readable screenshot."""
    generator = torch.Generator().manual_seed(seed)
    layers = []
    for _ in range(n_layers):
        logits = torch.randn(1, n_heads, seq, seq, generator=generator)  # (1, nh, T, T)
        for head in range(n_heads):
            offset = head % 3 - 1  # previous token, self, next token
            logits[0, head] += 4.0 * torch.diag(torch.ones(seq - abs(offset)), diagonal=offset)
            logits[0, head, :, 0] += 2.0 if head % 4 == 0 else 0.0  # some heads look at [CLS]
        layers.append(torch.softmax(logits, dim=-1))
    return tuple(layers)


def params_of(html: str) -> dict:
    """Decode the params literal that bertviz's script reads (it is plain JSON)."""
    start = html.index("const params = ") + len("const params = ")
    params, _ = json.JSONDecoder().raw_decode(html, start)
    return params


# (a) no network references ---------------------------------------------------------------


@pytest.mark.parametrize("view", [head_view_html, model_view_html])
def test_html_has_no_remote_script_or_cdn(view) -> None:
    html = view(random_attention(2, 4, 8), [f"t{i}" for i in range(8)])
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"<script[^>]*\bsrc\s*=", html, re.IGNORECASE), "a <script src> is left"
    assert not re.search(r"""src\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE), "a remote src is left"
    assert "cdnjs" not in html.lower()
    assert "cdn." not in html.lower()
    bertviz_part = html[html.index("<body>"):]
    assert "require.config" not in bertviz_part, "bertviz's require.config(paths: cdn...) is left"
    assert html.count("const params = ") == 1


# (b) vendored libraries inlined, in order ------------------------------------------------


def test_html_inlines_vendored_libraries_before_the_amd_shim() -> None:
    html = head_view_html(random_attention(2, 4, 8), [f"t{i}" for i in range(8)])
    positions = []
    for name in ("jquery.min.js", "d3.min.js", "require.js"):
        code = (VENDOR_DIR / name).read_text(encoding="utf-8")
        assert code in html, f"{name} is not inlined verbatim"
        positions.append(html.index(code))
    shim = html.index("define('jquery'")
    assert "define('d3'" in html
    bertviz_call = html.index("requirejs(['jquery', 'd3']")
    assert positions == sorted(positions), "jQuery and d3 must load before require.js"
    assert positions[-1] < shim < bertviz_call


def test_vendor_folder_documents_versions_and_licences() -> None:
    readme = (VENDOR_DIR / "README.md").read_text(encoding="utf-8")
    for needle in ("d3@5.7.0", "requirejs@2.3.6", "jquery@2.2.4", "BSD-3-Clause", "MIT"):
        assert needle in readme
    assert len(list((VENDOR_DIR / "LICENSES").glob("*.txt"))) == 3
    assert "v5.7.0" in (VENDOR_DIR / "d3.min.js").read_text(encoding="utf-8")[:200]
    assert "jQuery v2.2.4" in (VENDOR_DIR / "jquery.min.js").read_text(encoding="utf-8")[:200]
    assert "RequireJS 2.3.6" in (VENDOR_DIR / "require.js").read_text(encoding="utf-8")[:300]


# (c) payload ----------------------------------------------------------------------------


def test_rounding_shrinks_payload_versus_bertviz() -> None:
    from bertviz import head_view

    attention = random_attention(6, 12, 64)
    tokens = [f"tok{i}" for i in range(64)]
    theirs = payload_size_bytes(head_view(attention, tokens, html_action="return").data)
    ours = payload_size_bytes(head_view_html(attention, tokens))
    unrounded = payload_size_bytes(head_view_html(attention, tokens, decimals=None))
    assert ours < unrounded < theirs
    assert ours < theirs / 4, f"ours {ours:,} B vs bertviz {theirs:,} B"


def test_rounded_values_decode_within_half_a_step() -> None:
    attention = random_attention(2, 3, 10)
    params = params_of(head_view_html(attention, [f"t{i}" for i in range(10)], decimals=3))
    decoded = torch.tensor(params["attention"][0]["attn"], dtype=torch.float64)  # (L, nh, T, T)
    expected = torch.stack([a[0] for a in attention]).to(torch.float64)
    assert decoded.shape == expected.shape
    assert (decoded - expected).abs().max() <= 0.0005 + 1e-12


def test_decimals_none_keeps_exact_values() -> None:
    attention = random_attention(2, 3, 10)
    params = params_of(head_view_html(attention, [f"t{i}" for i in range(10)], decimals=None))
    decoded = torch.tensor(params["attention"][0]["attn"], dtype=torch.float32)
    assert torch.equal(decoded, torch.stack([a[0] for a in attention]))


def test_include_layers_ships_only_those_layers() -> None:
    attention = random_attention(6, 4, 16)
    tokens = [f"t{i}" for i in range(16)]
    all_layers = head_view_html(attention, tokens)
    two_layers = head_view_html(attention, tokens, include_layers=[1, 4], layer=4)
    params = params_of(two_layers)
    assert params["include_layers"] == [1, 4] and params["layer"] == 4
    assert len(params["attention"][0]["attn"]) == 2
    # The inlined libraries are a fixed ~420 kB; compare what varies, the attention data.
    assert len(json.dumps(params["attention"])) < len(json.dumps(params_of(all_layers)["attention"])) / 2
    assert payload_size_bytes(two_layers) < payload_size_bytes(all_layers)
    with pytest.raises(ValueError):
        head_view_html(attention, tokens, include_layers=[1, 4], layer=0)


def test_options_pass_through() -> None:
    attention = random_attention(2, 4, len(SENTENCE))
    params = params_of(head_view_html(attention, SENTENCE, sentence_b_start=9, heads=[0, 2]))
    assert params["heads"] == [0, 2]
    assert [d["name"] for d in params["attention"]][:2] == ["All", "Sentence A -> Sentence A"]
    model = params_of(model_view_html(attention, SENTENCE, include_heads=[1, 3], display_mode="light"))
    assert model["include_heads"] == [1, 3] and model["display_mode"] == "light"
    assert len(model["attention"][0]["attn"][0]) == 2


def test_token_text_cannot_close_the_script() -> None:
    html = head_view_html(random_attention(1, 2, 3), ["a", "</script><b>x", "c"])
    assert "</script><b>x" not in html
    assert params_of(html)["attention"][0]["left_text"][1] == "</script><b>x"


def test_batch_larger_than_one_is_rejected_clearly() -> None:
    with pytest.raises(ValueError, match="batch of one"):
        head_view_html([torch.rand(2, 4, 5, 5)], [str(i) for i in range(5)])


def test_module_does_not_import_streamlit() -> None:
    code = "import sys, app.bertviz_offline; assert 'streamlit' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, check=True)


# (d) it draws in a real browser with the network blocked --------------------------------


def render_in_chromium(html: str, tmp_path: Path, screenshot: Path, min_elements: int) -> tuple[int, int, list, list]:
    """Load ``html`` from a file in headless Chromium, offline; return SVG element counts."""
    from playwright.sync_api import sync_playwright

    page_file = tmp_path / "view.html"
    page_file.write_text(html, encoding="utf-8")
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            blocked = block_external_requests(page)
            errors = collect_console_errors(page)
            page.goto(page_file.as_uri())
            page.wait_for_function(
                "n => { const s = document.querySelector('#vis svg');"
                " return s !== null && s.querySelectorAll('*').length >= n; }",
                arg=min_elements,
                timeout=30_000,
            )
            page.wait_for_timeout(300)  # let transitions settle for the screenshot
            children = page.eval_on_selector("#vis svg", "s => s.children.length")
            descendants = page.eval_on_selector("#vis svg", "s => s.querySelectorAll('*').length")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return children, descendants, blocked, errors


@requires_chromium
def test_head_view_renders_offline_in_chromium(tmp_path: Path) -> None:
    n_layers, n_heads = 6, 12
    attention = structured_attention(n_layers, n_heads, len(SENTENCE))
    html = head_view_html(attention, SENTENCE, layer=2)
    children, descendants, blocked, errors = render_in_chromium(
        html, tmp_path, SCREENSHOT_DIR / "bertviz_head_view.png", min_elements=n_heads * len(SENTENCE)
    )
    assert not blocked, f"the page tried to reach the network: {blocked}"
    assert not errors, errors
    assert children >= 3  # token columns, attention lines, head checkboxes
    # One highlight box per (head, token) on each side, plus lines and checkboxes.
    assert descendants >= 2 * n_heads * len(SENTENCE)


@requires_chromium
def test_model_view_renders_offline_in_chromium(tmp_path: Path) -> None:
    n_layers, n_heads = 3, 4
    attention = structured_attention(n_layers, n_heads, len(SENTENCE))
    html = model_view_html(attention, SENTENCE)
    children, descendants, blocked, errors = render_in_chromium(
        html, tmp_path, SCREENSHOT_DIR / "bertviz_model_view.png", min_elements=n_layers * n_heads
    )
    assert not blocked, f"the page tried to reach the network: {blocked}"
    assert not errors, errors
    assert children >= n_layers * n_heads
    assert descendants >= n_layers * n_heads * len(SENTENCE)


def test_model_view_is_drawn_to_the_frame_width_by_default():
    """Issue 18, bug 5: bertviz draws the model view 970 px wide; a narrower frame cut off the last heads."""
    import torch

    from app.bertviz_offline import model_view_html

    attention = [torch.softmax(torch.randn(1, 12, 5, 5), -1) for _ in range(2)]
    fitted = model_view_html(attention, list("abcde"))
    assert "setAttribute('viewBox'" in fitted and "svg.style.width = '100%'" in fitted
    assert "setAttribute('viewBox'" not in model_view_html(attention, list("abcde"), fit_width=False)
