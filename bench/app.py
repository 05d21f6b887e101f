"""The app in a real browser: cold start, warm re-render times, and attention payload against bertviz.

Prints
  1. cold start: `python -m streamlit run app/main.py` launched -> the Attention page's first
     render in headless Chromium (bertviz SVG drawn) on the default model;
  2. warm times of the Attention page at 64 and 512 tokens, per model: a new input (the model
     is already loaded: tokenize, run, statistics, rollout, view) and a re-render (layer slider
     moved: the trace is reused, the view and heatmaps are rebuilt), each until the script is
     idle and the attention view has drawn;
  3. attention payload at 128 and 512 tokens: the view the page sends (the HTML in its iframe)
     and every websocket byte of that render, against the HTML bertviz's own `head_view`
     returns for the same attention (all layers, full precision; its size is computed exactly
     layer by layer, checked against a real bertviz call at 32 tokens).
Run from the repository root: .venv/bin/python bench/app.py [--models minilm smollm2] [--repeats 3]
These machines are shared and noisy: absolute times drift from run to run; payload sizes do not.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.attention import dense_attentions, example_attentions  # noqa: E402
from app.bertviz_offline import head_view_html, payload_size_bytes  # noqa: E402
from app.sparse_view import sparse_head_view_html  # noqa: E402
from app.view_plan import AUTO, HEAD_VIEW, plan_view  # noqa: E402
from models import load_model  # noqa: E402
from tests.app.streamlit_server import completed_runs, free_port, wait_for_run_after, wait_until_idle  # noqa: E402
from tests.browser_support import block_external_requests, launch_chromium  # noqa: E402

VIEW_DRAWN = ("() => { for (const f of document.querySelectorAll('iframe')) {"
              " const d = f.contentDocument; const s = d && d.querySelector('#vis svg');"
              " if (s && s.querySelectorAll('line').length > 0) return true; } return false; }")


# ---------------------------------------------------------------- inputs of an exact length
def text_of_tokens(model, n_tokens: int) -> tuple[str, int]:
    """A text from sample_data/sentences.txt that the model tokenizes to ``n_tokens`` (or just under)."""
    sentences = [s for s in (ROOT / "sample_data" / "sentences.txt").read_text().splitlines() if s.strip()]
    words: list[str] = []
    while len(model.encode(" ".join(words) or "a").tokens[0]) < n_tokens:
        words += sentences[len(words) % len(sentences)].split()
    low, high = 1, len(words)  # the longest prefix of words that fits in n_tokens
    while low < high:
        middle = (low + high + 1) // 2
        if len(model.encode(" ".join(words[:middle])).tokens[0]) <= n_tokens:
            low = middle
        else:
            high = middle - 1
    text = " ".join(words[:low])
    return text, len(model.encode(text).tokens[0])


# ---------------------------------------------------------------- bertviz's own page size
def bertviz_html_size(attentions, tokens) -> int:
    """Bytes of bertviz ``head_view(attention, tokens, html_action='return')`` without building it.

    bertviz fills its template's two PYTHON_PARAMS markers with ``json.dumps(params)``, where
    params holds ``attention.tolist()`` of all layers: 1.7 GB for SmolLM2 at 512 tokens. A call
    with one zero layer of one head gives everything else; the attention list (and the
    include_layers list) differ, and each appears twice.
    """
    import torch
    from bertviz import head_view

    n = len(tokens)
    small = [torch.zeros(1, 1, n, n)]
    base = len(head_view(small, list(tokens), html_action="return").data.encode("utf-8"))
    small_list = json.dumps([small[0][0].tolist()])  # (L=1, H=1, n, n) as bertviz dumps it, minus batch
    parts = [json.dumps(a[0].tolist()) for a in attentions]  # one layer at a time: (H, n, n)
    real_list_size = 2 + sum(len(p) for p in parts) + 2 * (len(parts) - 1)  # "[" + ", ".join + "]"
    layers_delta = len(json.dumps(list(range(len(attentions))))) - len(json.dumps([0]))
    return base + 2 * (real_list_size - len(small_list) + layers_delta)


def check_bertviz_size_formula(model) -> None:
    from bertviz import head_view

    trace = model.run(text_of_tokens(model, 32)[0])
    attentions = dense_attentions(trace, model.n_heads)
    real = len(head_view(list(attentions), trace.tokens[0], html_action="return").data.encode("utf-8"))
    computed = bertviz_html_size(attentions, trace.tokens[0])
    assert real == computed, f"bertviz size formula is off: {computed} vs {real}"


# ---------------------------------------------------------------- browser driving
class Session:
    """One browser tab on the app, counting every websocket byte it receives."""

    def __init__(self, browser, url: str) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1600})
        block_external_requests(self.page)
        self.received = 0
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._count))

    def _count(self, payload) -> None:
        self.received += len(payload) if isinstance(payload, (bytes, bytearray)) else len(str(payload).encode())

    def open(self, url: str) -> tuple[float, int]:
        """Load a page: seconds until its first run finished and the attention view drew, websocket bytes."""
        self.received, start = 0, time.perf_counter()
        self.page.goto(url)
        wait_until_idle(self.page, timeout_ms=900_000)
        self.page.wait_for_function(VIEW_DRAWN, timeout=300_000, polling=50)
        return time.perf_counter() - start, self.received

    def _timed(self, act) -> tuple[float, int]:
        before = completed_runs(self.page)
        self.received, start = 0, time.perf_counter()
        act()
        wait_for_run_after(self.page, before)
        self.page.wait_for_function(VIEW_DRAWN, timeout=300_000, polling=50)
        return time.perf_counter() - start, self.received

    def set_text(self, text: str) -> tuple[float, int]:
        area = self.page.locator("[data-testid='stTextArea'] textarea")
        area.fill(text)
        return self._timed(lambda: area.press("Control+Enter"))

    def move_layer(self) -> tuple[float, int]:
        slider = self.page.get_by_role("slider", name="Layer")
        slider.focus()
        now = int(slider.input_value() or 0)
        return self._timed(lambda: self.page.keyboard.press("ArrowLeft" if now > 0 else "ArrowRight"))


def start_server(port: int, log: Path) -> subprocess.Popen:
    command = [sys.executable, "-m", "streamlit", "run", "app/main.py", "--server.port", str(port),
               "--server.headless", "true"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)


def wait_health(url: str, process: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("streamlit exited early")
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("streamlit did not start")


def page_view_html(model, trace, layer: int = 0, top_k: int = 5) -> tuple[str, str]:
    """The view HTML the Attention page sends with its default widgets (Auto view, mean of layer)."""
    tokens = trace.tokens[0]
    plan = plan_view(AUTO, len(tokens), [len(h) for h in trace.head_ids], layer, top_k)
    if plan.view == HEAD_VIEW:
        html = head_view_html(dense_attentions(trace, model.n_heads), tokens, layer=layer,
                              include_layers=plan.include_layers)
    else:
        html = sparse_head_view_html(example_attentions(trace)[layer], tokens, trace.head_ids[layer], layer, top_k=top_k)
    return plan.view, html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["minilm", "smollm2"])
    parser.add_argument("--repeats", type=int, default=3, help="re-renders timed per size (median printed)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    print("Loading models in the bench process (inputs and bertviz reference sizes)…", flush=True)
    loaded = {name: load_model(name) for name in args.models}
    check_bertviz_size_formula(loaded[args.models[0]])

    port = free_port()
    url = f"http://localhost:{port}"
    log = Path("/tmp") / f"bench-app-{port}.log"
    results: dict = {"warm": [], "payload": []}
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        start = time.perf_counter()
        server = start_server(port, log)
        try:
            wait_health(url, server)
            healthy = time.perf_counter() - start
            session = Session(browser, url)
            session.open(url)
            cold = time.perf_counter() - start
            results["cold"] = (healthy, cold)
            print(f"\nCold start (default model minilm): server answers after {healthy:.1f} s, "
                  f"Attention page first rendered (bertviz SVG drawn) after {cold:.1f} s", flush=True)

            for name in args.models:
                model = loaded[name]
                session = Session(browser, url)
                session.open(f"{url}/?model={name}&text=warm+up")  # loads the model into the server's cache
                for n in (64, 512):
                    text, actual = text_of_tokens(model, n)
                    first, first_bytes = session.set_text(text)
                    times, sizes = [], []
                    for _ in range(args.repeats):
                        seconds, size = session.move_layer()
                        times.append(seconds)
                        sizes.append(size)
                    row = dict(model=name, tokens=actual, new_input=first, new_input_bytes=first_bytes,
                               rerender=statistics.median(times), rerender_bytes=int(statistics.median(sizes)),
                               rerender_all=times, rerender_bytes_all=sizes)
                    results["warm"].append(row)
                    print(f"  {name:8s} {actual:4d} tokens: new input {first:6.2f} s ({first_bytes / 1e6:6.2f} MB over "
                          f"the websocket); re-render (layer moved) median {row['rerender']:6.2f} s "
                          f"({row['rerender_bytes'] / 1e6:6.2f} MB)", flush=True)
                session.page.close()
                for n in (128, 512):
                    text, actual = text_of_tokens(model, n)
                    fresh = Session(browser, url)  # a new tab: nothing cached client-side, the whole render counts
                    _, page_bytes = fresh.open(f"{url}/?{urlencode({'model': name, 'text': text})}")
                    fresh.page.close()
                    trace = model.run(text)
                    view, html = page_view_html(model, trace)
                    ours = payload_size_bytes(html)
                    theirs = bertviz_html_size(dense_attentions(trace, model.n_heads), trace.tokens[0])
                    rounded_all = None
                    if actual <= 128:  # our offline bertviz head view of every layer, for comparison
                        rounded_all = payload_size_bytes(head_view_html(dense_attentions(trace, model.n_heads), trace.tokens[0]))
                    row = dict(model=name, tokens=actual, view=view, ours=ours, page_websocket=page_bytes,
                               bertviz=theirs, ratio=theirs / ours, offline_head_view_all_layers=rounded_all)
                    results["payload"].append(row)
                    print(f"  {name:8s} {actual:4d} tokens: page view ({view}) {ours / 1e6:7.3f} MB; whole render "
                          f"{page_bytes / 1e6:6.2f} MB over the websocket; bertviz's own head_view HTML "
                          f"{theirs / 1e6:9.1f} MB -> {theirs / ours:7.0f}x smaller"
                          + (f"; our offline bertviz head view of all layers {rounded_all / 1e6:.2f} MB"
                             if rounded_all else ""), flush=True)
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)

    print("\nSummary (paste into the README)")
    healthy, cold = results["cold"]
    print(f"| cold start to first render (minilm) | {cold:.1f} s (server up after {healthy:.1f} s) |")
    for row in results["warm"]:
        print(f"| {row['model']} · {row['tokens']} tokens | new input {row['new_input']:.2f} s | "
              f"re-render {row['rerender']:.2f} s |")
    for row in results["payload"]:
        print(f"| {row['model']} · {row['tokens']} tokens | {row['view']} {row['ours'] / 1e6:.3f} MB | "
              f"bertviz {row['bertviz'] / 1e6:.1f} MB | {row['ratio']:.0f}x smaller |")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "bench_app.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
