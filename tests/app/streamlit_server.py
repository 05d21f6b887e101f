"""Start the app as the README says (`python -m streamlit run ...`) on a free port, for browser tests."""
from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(script: str = "app/main.py", extra_args: list[str] | None = None,
                     env: dict[str, str] | None = None, log: Path | None = None,
                     timeout: float = 120) -> Iterator[tuple[str, Path]]:
    """Run ``python -m streamlit run <script> --server.port <free> --server.headless true`` from the repo root.

    Yields (base URL, log file). The server is stopped (its process only) on exit.
    """
    port = free_port()
    log = log or Path(os.environ.get("TMPDIR", "/tmp")) / f"streamlit-{port}.log"
    command = [sys.executable, "-m", "streamlit", "run", script, "--server.port", str(port),
               "--server.headless", "true", *(extra_args or [])]
    # no start-up warm-up unless a test asks for it (app/warm_up.py): it would load the real SmolLM2 beside the
    # tiny models a test maps, and several servers at once on a 2-core machine would wait for it
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WORKBENCH_WARM_MODELS": "",
                   **(env or {})}
    with log.open("w") as handle:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=handle, stderr=subprocess.STDOUT)
    url = f"http://localhost:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"streamlit exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"streamlit did not answer on {url} within {timeout} s:\n{log.read_text()}")
            time.sleep(0.3)
        yield url, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_until_idle(page, timeout_ms: float = 180_000, after_interaction: bool = False) -> None:
    """Wait until the Streamlit script has finished its run for this page.

    The app root carries ``data-test-script-state`` ("initial", "running", "notRunning", ...).
    After a click or a key press the rerun starts a moment later, so first wait (briefly) to
    see it running, then for it to finish.
    """
    if after_interaction:
        try:
            page.wait_for_selector("[data-testid='stApp'][data-test-script-state='running']", timeout=2_000)
        except Exception:  # the rerun was quicker than the first poll: it has already finished
            pass
    page.wait_for_selector("[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms)
    # elements of the last run that this run did not redraw stay "stale" until the frontend clears them;
    # a click on one of those can be lost, so wait for the page to settle
    page.wait_for_function("() => !document.querySelector(\"[data-stale='true']\")", timeout=timeout_ms, polling=100)
    page.wait_for_timeout(300)  # let the last deltas paint


def wait_for_caption(page, text: str, timeout_ms: float = 60_000) -> None:
    """Wait until a caption on the page contains ``text`` (results arrive when the rerun ends)."""
    page.wait_for_function(
        """t => [...document.querySelectorAll("[data-testid='stCaptionContainer']")].some(e => e.innerText.includes(t))""",
        arg=text, timeout=timeout_ms, polling=250)


def main_text(page) -> str:
    return page.inner_text("[data-testid='stMain']")


# Counts script runs from the mutation records themselves (their old values), so a run that starts and
# ends between two observer callbacks still counts; reading the attribute in the callback would miss it.
_WATCH_RUNS = """() => {
  if (window.__workbenchRuns) return window.__workbenchRuns.done;
  const app = document.querySelector("[data-testid='stApp']"), attr = "data-test-script-state";
  window.__workbenchRuns = {done: 0};
  new MutationObserver(records => {
    records.forEach((record, i) => {
      const now = i + 1 < records.length ? records[i + 1].oldValue : app.getAttribute(attr);
      if (record.oldValue === "running" && now !== "running") window.__workbenchRuns.done += 1;
    });
  }).observe(app, {attributes: true, attributeOldValue: true, attributeFilter: [attr]});
  return 0;
}"""


def completed_runs(page) -> int:
    """How many script runs this page has seen finish since watching began (installs the watcher)."""
    return page.evaluate(_WATCH_RUNS)


def wait_for_run_after(page, done_before: int, timeout_ms: float = 900_000) -> None:
    """Wait until a script run that started after ``completed_runs`` returned ``done_before`` has finished.

    Exact where ``wait_until_idle(after_interaction=True)`` guesses: a MutationObserver counts
    every running -> notRunning transition of the app root, however short the run.
    """
    page.wait_for_function("n => window.__workbenchRuns && window.__workbenchRuns.done > n", arg=done_before,
                           timeout=timeout_ms, polling=50)
