"""Shared fixtures and helpers for the test suite.

The hub is per OS thread, so every test in this process shares the main
thread's hub.  Tests that leave a greenthread blocked must kill it.
"""

from __future__ import annotations

import os

import pytest
from helpers.isolated import run_code

from nettools.kernel import hub as hubmod


@pytest.fixture(autouse=True)
def _replace_dead_hub():
    """If a test killed the hub greenlet (e.g. pytest-timeout raised inside the
    hub's poll), give later tests a fresh hub instead of a cascade of failures."""
    yield
    hub = getattr(hubmod.thread_hub, "hub", None)
    if hub is not None and hub.greenlet.dead:
        del hubmod.thread_hub.hub
        hub.close()


@pytest.fixture
def hub():
    return hubmod.get_hub()


@pytest.fixture
def pipe():
    """A non-blocking pipe ``(r, w)``; the hub is told before both ends close."""
    r, w = os.pipe()
    os.set_blocking(r, False)
    os.set_blocking(w, False)
    yield r, w
    for fd in (r, w):
        hubmod.notify_close(fd)
        try:
            os.close(fd)
        except OSError:
            pass


@pytest.fixture
def run_script():
    """``run_script(code, env=None)``: run ``code`` in a fresh interpreter and return
    the ``CompletedProcess`` (text output).  For process-global effects (fork,
    DeadlockError in a pristine main greenlet, environment variables)."""

    def run_script(code: str, env: dict | None = None, timeout: float = 30):
        return run_code(code, timeout, env)

    return run_script
