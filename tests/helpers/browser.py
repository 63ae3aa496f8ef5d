"""Headless Chromium (Debian's) driven by Playwright, for the browser tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .paths import ROOT
from .system import ensure_program

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
WAIT_MS = 15_000  # any single wait in a page
#: Screenshots the browser tests take, for a person to look at.
ARTIFACTS = ROOT / "build" / "test-artifacts"


@contextmanager
def chromium(sync_api: Any) -> Iterator[Any]:
    """A launched headless Chromium (``playwright.sync_api`` passed in, so that a
    test module can ``importorskip`` it)."""
    executable = ensure_program("chromium", path=CHROMIUM)
    with sync_api.sync_playwright() as p:
        # launch() gives the browser a fresh temporary user data dir of its own.
        b = p.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS, timeout=WAIT_MS * 2
        )
        try:
            yield b
        finally:
            b.close()
