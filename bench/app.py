"""The app in a real browser, issue 18's goals: each action to the settled page, beside the model's own forward time.

Rows (median of --repeats where an action can be repeated on one server; the floor is the model's
forward pass on the same input, measured in this process right after the row's actions, median of 3):
  1. first page after start: `python -m streamlit run app/main.py` launched -> the Attention page
     settled on the default model (goal <= 6 s);
  2. minilm, a new ~64-token sentence: the first one after the page opens (goal <= 1.5 s), then
     new sentences (goal <= 0.5 s); a layer change and a head change (goal <= 0.5 s);
  3. switch to smollm2 in the sidebar, its conversion already cached on disk (goal <= 6 s);
  4. smollm2, a new 236-token text (goal <= 3 s);
  5. the Heads page on smollm2: gradient importance of every head on its evaluation sentences,
     from opening the page to the scores drawn (goal <= 15 s; floor: one forward over those sentences);
  6. with --payload, the attention payload at 128 and 512 tokens against bertviz's own HTML.
"Settled": the script run started by the action has finished, no element is stale, and on the Attention
page the attention view has drawn its SVG lines in a new frame (or kept its frame when its HTML did not
change); polled every 50 ms, without the fixed 300 ms pause of the tests' wait_until_idle. Each row's note
says when the browser saw the script run finish: the rest is the websocket and the browser's drawing.
Run from the repository root: .venv/bin/python bench/app.py [--repeats 5] [--payload]
These machines are shared and noisy: the load average is printed; absolute times drift, payload sizes do not.
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
from bench._timing import interleaved_medians  # noqa: E402
from app.bertviz_offline import head_view_html, payload_size_bytes  # noqa: E402
from app.sparse_view import sparse_head_view_html  # noqa: E402
from app.sidebar import example_sentences  # noqa: E402
from app.view_plan import AUTO, HEAD_VIEW, plan_view  # noqa: E402
from models import load_model  # noqa: E402
from tests.app.streamlit_server import completed_runs, free_port, wait_for_run_after  # noqa: E402
from tests.browser_support import block_external_requests, launch_chromium  # noqa: E402

VIEW_DRAWN = ("() => { for (const f of document.querySelectorAll('iframe')) {"
              " const d = f.contentDocument; const s = d && d.querySelector('#vis svg');"
              " if (s && s.querySelectorAll('line').length > 0) return true; } return false; }")


# ---------------------------------------------------------------- inputs of an exact length
def text_of_tokens(model, n_tokens: int, first: int = 0) -> tuple[str, int]:
    """A text from sample_data/sentences.txt, from sentence ``first`` on, that the model tokenizes to ``n_tokens`` (or just under)."""
    sentences = [s for s in (ROOT / "sample_data" / "sentences.txt").read_text().splitlines() if s.strip()]
    sentences = sentences[first:] + sentences[:first]
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
# Before an action every attention frame is marked; the view has settled when a frame has drawn lines and is
# either a new document (not marked) or the same HTML as before (Streamlit kept the frame: nothing to redraw).
MARK_FRAMES = ("() => { for (const f of document.querySelectorAll('iframe')) { f.__benchSrc = f.srcdoc;"
               " if (f.contentWindow) f.contentWindow.__benchOld = true; } }")
VIEW_SETTLED = ("() => { if (document.querySelector(\"[data-stale='true']\")) return false;"
                " for (const f of document.querySelectorAll('iframe')) {"
                " const d = f.contentDocument; const s = d && d.querySelector('#vis svg');"
                " if (!s || s.querySelectorAll('line').length === 0) continue;"
                " if (!f.contentWindow.__benchOld || f.srcdoc === f.__benchSrc) return true; } return false; }")
NOT_STALE = "() => !document.querySelector(\"[data-stale='true']\")"
HEADS_DRAWN = ("() => !document.querySelector(\"[data-stale='true']\") &&"
               " [...document.querySelectorAll(\"[data-testid='stCaptionContainer']\")]"
               ".some(e => e.innerText.includes('Click a cell to mask'))")


class Session:
    """One browser tab on the app, counting every websocket byte it receives."""

    def __init__(self, browser) -> None:
        self.page = browser.new_page(viewport={"width": 1400, "height": 1600})
        block_external_requests(self.page)
        self.received = 0
        self.script_seconds: list[float] = []  # action -> the script run finished (the rest is the browser's)
        self.page.on("websocket", lambda ws: ws.on("framereceived", self._count))

    def _count(self, payload) -> None:
        self.received += len(payload) if isinstance(payload, (bytes, bytearray)) else len(str(payload).encode())

    def open(self, url: str, settled: str = VIEW_SETTLED) -> tuple[float, int]:
        """Load a page: seconds until its first run finished and the page settled, websocket bytes."""
        self.received, start = 0, time.perf_counter()
        self.page.goto(url)
        completed_runs(self.page)
        self.page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=900_000)
        self.page.wait_for_function(settled, timeout=900_000, polling=50)
        return time.perf_counter() - start, self.received

    def _timed(self, act, settled: str = VIEW_SETTLED) -> tuple[float, int]:
        before = completed_runs(self.page)
        self.page.evaluate(MARK_FRAMES)
        self.received, start = 0, time.perf_counter()
        act()
        wait_for_run_after(self.page, before)
        self.script_seconds.append(time.perf_counter() - start)
        self.page.wait_for_function(settled, timeout=900_000, polling=50)
        return time.perf_counter() - start, self.received

    def set_text(self, text: str) -> tuple[float, int]:
        area = self.page.locator("[data-testid='stTextArea'] textarea")
        area.fill(text)
        return self._timed(lambda: area.press("Control+Enter"))

    def move_layer(self) -> tuple[float, int]:
        slider = self.page.get_by_role("slider", name="Layer")
        slider.focus()
        now = int(slider.get_attribute("aria-valuenow") or 0)
        return self._timed(lambda: self.page.keyboard.press("ArrowLeft" if now > 0 else "ArrowRight"))

    def _choose(self, label: str, option: str, where=None) -> tuple[float, int]:
        box = (where or self.page).locator("[data-testid='stSelectbox']").filter(
            has=self.page.get_by_text(label, exact=True)).first
        box.click()
        choice = self.page.get_by_role("option").filter(has_text=option).first
        choice.wait_for(state="visible", timeout=30_000)
        return self._timed(choice.click)

    def change_head(self, head: int) -> tuple[float, int]:
        return self._choose("Head", str(head))

    def switch_model(self, name: str) -> tuple[float, int]:
        return self._choose("Model", f"{name} —", where=self.page.locator("[data-testid='stSidebar']"))


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


def forward_floor(model, inputs, repeats: int = 3) -> float:
    """The model's own forward pass on ``inputs`` here (median of ``repeats``): what no page can beat."""
    return interleaved_medians({"forward": lambda: model.run(inputs)}, repeats=repeats, warmup=1)["forward"]


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


class Rows:
    """The figures, printed as they come and once more as a table at the end."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, what: str, times: list[float], floor: float | None, goal: float, note: str = "",
            session: "Session | None" = None) -> None:
        median = statistics.median(times)
        if session is not None:  # how much of it was the script run (the rest: websocket, browser render)
            script = statistics.median(session.script_seconds[-len(times):])
            note = f"script run done after {script:.2f} s" + (f"; {note}" if note else "")
        row = dict(what=what, median=median, times=times, floor=floor, goal=goal, met=median <= goal, note=note,
                   load=load_average())
        self.rows.append(row)
        floor_text = f"forward {floor:6.3f} s" if floor is not None else "forward     -  "
        print(f"  {what:48s} median {median:6.2f} s of {len(times)} ({', '.join(f'{t:.2f}' for t in times)}) · "
              f"{floor_text} · goal <= {goal:g} s {'met' if row['met'] else 'MISSED'} · load {row['load']}"
              + (f" · {note}" if note else ""), flush=True)

    def table(self) -> str:
        lines = ["| action | median s (n) | model forward s | × forward | goal s | met | load average |",
                 "|---|---|---|---|---|---|---|"]
        for r in self.rows:
            floor = f"{r['floor']:.3f}" if r["floor"] is not None else "-"
            ratio = f"{r['median'] / r['floor']:.1f}" if r["floor"] else "-"
            lines.append(f"| {r['what']} | {r['median']:.2f} ({len(r['times'])}) | {floor} | {ratio} | ≤ {r['goal']:g} | "
                         f"{'yes' if r['met'] else '**no**'} | {r['load']} |")
        return "\n".join(lines)


def payload_rows(browser, url: str, loaded: dict) -> list[dict]:
    """Attention payload at 128 and 512 tokens: our view against bertviz's own head_view HTML."""
    results = []
    for name, model in loaded.items():
        for n in (128, 512):
            text, actual = text_of_tokens(model, n)
            fresh = Session(browser)  # a new tab: nothing cached client-side, the whole render counts
            _, page_bytes = fresh.open(f"{url}/?{urlencode({'model': name, 'text': text})}")
            fresh.page.close()
            trace = model.run(text)
            view, html = page_view_html(model, trace)
            ours = payload_size_bytes(html)
            theirs = bertviz_html_size(dense_attentions(trace, model.n_heads), trace.tokens[0])
            results.append(dict(model=name, tokens=actual, view=view, ours=ours, page_websocket=page_bytes,
                                bertviz=theirs, ratio=theirs / ours))
            print(f"  {name:8s} {actual:4d} tokens: page view ({view}) {ours / 1e6:7.3f} MB; whole render "
                  f"{page_bytes / 1e6:6.2f} MB over the websocket; bertviz's own head_view HTML "
                  f"{theirs / 1e6:9.1f} MB -> {theirs / ours:7.0f}x smaller", flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="repeats of each repeatable action (median printed)")
    parser.add_argument("--heads-repeats", type=int, default=1, help="fresh sessions timed on the Heads page")
    parser.add_argument("--payload", action="store_true", help="also the payload rows against bertviz (slow)")
    parser.add_argument("--view", default=None, help="the Attention page's view, as its radio names it (default: "
                        "the page's own, Auto); e.g. 'Sparse head view (top-k)' to time the page without bertviz")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright
    from models.embedded import cache_dir

    print(f"Load average before: {load_average()}; {os.cpu_count()} cores; Attention view: {args.view or 'Auto'}", flush=True)
    print("Loading models in the bench process (inputs and forward-time floors)…", flush=True)
    loaded = {name: load_model(name) for name in ("minilm", "smollm2")}
    minilm, smollm2 = loaded["minilm"], loaded["smollm2"]
    if args.payload:
        check_bertviz_size_formula(minilm)
    print(f"smollm2's conversion cached on disk: {any(cache_dir().glob('smollm2*'))} ({cache_dir()})", flush=True)
    # distinct texts (a new input each time), each the same length in tokens
    minilm_texts = [text_of_tokens(minilm, 64, first=i) for i in range(args.repeats + 1)]
    smollm2_texts = [text_of_tokens(smollm2, 236, first=i) for i in range(args.repeats)]
    sentences = [s for s in (ROOT / "sample_data" / "sentences.txt").read_text().splitlines() if s.strip()][:32]
    # each floor is measured right after its row's actions (the server idle then): the same machine as the row
    floors = {
        "minilm64": lambda: forward_floor(minilm, minilm_texts[0][0]),
        "smollm2_236": lambda: forward_floor(smollm2, smollm2_texts[0][0]),
        # the Heads page scores on these sentences in batches of 16 (analysis.metrics.make_eval_set)
        "heads": lambda: forward_floor(smollm2, sentences[:16], 1) + forward_floor(smollm2, sentences[16:32], 1),
        "first": lambda: forward_floor(minilm, example_sentences()[0]),  # the text the first page opens on
    }
    print(f"minilm texts of {minilm_texts[0][1]} tokens, smollm2 texts of {smollm2_texts[0][1]} tokens; "
          f"load average {load_average()}", flush=True)

    rows = Rows()
    port = free_port()
    url = f"http://localhost:{port}"
    log = Path("/tmp") / f"bench-app-{port}.log"
    payload = []
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright)
        start = time.perf_counter()
        server = start_server(port, log)
        try:
            wait_health(url, server)
            healthy = time.perf_counter() - start
            session = Session(browser)
            session.open(url + (f"/?{urlencode({'attention_view': args.view})}" if args.view else ""))
            rows.add("first page after start (minilm)", [time.perf_counter() - start], floors["first"](), 6.0,
                     f"server answers after {healthy:.1f} s")

            first, _ = session.set_text(minilm_texts[0][0])
            rows.add(f"minilm, first new sentence ({minilm_texts[0][1]} tokens)", [first], floors["minilm64"](), 1.5, session=session)
            rows.add(f"minilm, new sentence ({minilm_texts[0][1]} tokens)",
                     [session.set_text(text)[0] for text, _ in minilm_texts[1:]], floors["minilm64"](), 0.5, session=session)
            rows.add("minilm, layer change", [session.move_layer()[0] for _ in range(args.repeats)], None, 0.5,
                     "no forward: the trace is kept", session=session)
            rows.add("minilm, head change", [session.change_head(h % minilm.n_heads)[0] for h in range(args.repeats)],
                     None, 0.5, "no forward: the trace is kept", session=session)

            switched, _ = session.switch_model("smollm2")
            rows.add("switch to smollm2 (conversion cached)", [switched], forward_floor(smollm2, session_text(session)),
                     6.0, "loads the model from the disk cache, then runs the page", session=session)
            rows.add(f"smollm2, new text ({smollm2_texts[0][1]} tokens)",
                     [session.set_text(text)[0] for text, _ in smollm2_texts], floors["smollm2_236"](), 3.0,
                     session=session)
            session.page.close()

            heads = []
            for _ in range(args.heads_repeats):  # a fresh session each time: its scores are not kept yet
                tab = Session(browser)
                heads.append(tab.open(f"{url}/heads?model=smollm2", settled=HEADS_DRAWN)[0])
                tab.page.close()
            rows.add("Heads page, gradient importance, smollm2", heads, floors["heads"](), 15.0,
                     f"{len(sentences)} sentences; opening the page to the scores drawn")
            if args.payload:
                payload = payload_rows(browser, url, loaded)
        finally:
            browser.close()
            server.terminate()
            server.wait(timeout=30)

    print(f"\nSummary (load average {load_average()}, {os.cpu_count()} cores)")
    print(rows.table())
    for row in payload:
        print(f"| {row['model']} · {row['tokens']} tokens | {row['view']} {row['ours'] / 1e6:.3f} MB | "
              f"bertviz {row['bertviz'] / 1e6:.1f} MB | {row['ratio']:.0f}x smaller |")
    (ROOT / "artifacts").mkdir(exist_ok=True)
    (ROOT / "artifacts" / "bench_app.json").write_text(json.dumps({"rows": rows.rows, "payload": payload}, indent=2))


def session_text(session: Session) -> str:
    """The text in the page's box (what the page ran the model on)."""
    return session.page.locator("[data-testid='stTextArea'] textarea").input_value()


if __name__ == "__main__":
    main()
