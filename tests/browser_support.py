"""Shared helpers for browser tests: Debian's Chromium driven by Playwright, offline.

Playwright's own browser downloads are impossible here (and a test must never reach the
network), so tests drive the system Chromium at ``/usr/bin/chromium``
(``apt-get install chromium``) and block every request that leaves the machine.

Usage::

    from playwright.sync_api import sync_playwright
    from tests.browser_support import (
        block_external_requests, collect_console_errors, launch_chromium, requires_chromium,
    )

    @requires_chromium
    def test_page_draws():
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page()
            blocked = block_external_requests(page)
            errors = collect_console_errors(page)
            page.goto("http://localhost:8501")
            ...
            assert not blocked and not errors
            browser.close()
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:  # playwright is only needed by the tests that use a browser
    from playwright.sync_api import Browser, Page, Playwright

CHROMIUM_PATH = "/usr/bin/chromium"

CHROMIUM_ARGS = [
    "--no-sandbox",  # we run as root in a container
    "--disable-gpu",
    "--disable-background-networking",  # no update checks, safe-browsing lists, etc.
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})


def chromium_available() -> bool:
    """True if the system Chromium and the playwright package are both present."""
    if not (os.path.isfile(CHROMIUM_PATH) and os.access(CHROMIUM_PATH, os.X_OK)):
        return False
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return False
    return True


def chromium_skip_reason() -> str:
    """Why browser tests are skipped on this machine (empty if they can run)."""
    if not os.path.isfile(CHROMIUM_PATH):
        return f"{CHROMIUM_PATH} not found: install Debian's Chromium with `apt-get install -y chromium`"
    if not chromium_available():
        return "the playwright Python package is not importable (pip install playwright; no browser download needed)"
    return ""


requires_chromium = pytest.mark.skipif(not chromium_available(), reason=chromium_skip_reason() or "chromium unavailable")


def launch_chromium(playwright: "Playwright", **kwargs) -> "Browser":
    """Launch the system Chromium headless with networking side channels turned off."""
    args = CHROMIUM_ARGS + list(kwargs.pop("args", []))
    return playwright.chromium.launch(executable_path=CHROMIUM_PATH, args=args, headless=kwargs.pop("headless", True), **kwargs)


def is_local_url(url: str) -> bool:
    """True for file:, data:, blob:, about: URLs and anything served by this machine."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return True
    return (parts.hostname or "") in LOCAL_HOSTS


def block_external_requests(page: "Page") -> list[str]:
    """Abort every request of ``page`` that is not local; return the list of blocked URLs.

    The list fills as the page runs, so a test can assert it stays empty (the page never
    even tried to reach the network) as well as that it rendered.
    """
    blocked: list[str] = []

    def handle(route) -> None:
        url = route.request.url
        if is_local_url(url):
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")

    page.route("**/*", handle)
    return blocked


def collect_console_errors(page: "Page") -> list[str]:
    """Record console ``error`` messages and uncaught exceptions of ``page`` in a list."""
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(f"console.error: {msg.text}") if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    return errors

