"""``nettools crawl``'s progress bar on a real terminal (a pty): log lines print
whole above it, ``NO_COLOR`` takes its colours and ``CI=true`` turns it off."""

from __future__ import annotations

import os
import pty
import re
import select
import subprocess
import sys

import pytest
from helpers.cli import NO_PROXY, clean_env
from helpers.wsgi import ServerThread

import nettools

pytestmark = pytest.mark.timeout(60)

ANSI = re.compile(rb"\x1b\[[0-9;?]*[A-Za-z]")


def site(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/robots.txt":  # a warning is logged while the bar runs
        start_response("500 Oops", [("Content-Type", "text/plain")])
        return [b"no"]
    if path == "/":
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b"".join(b'<a href="/p%d">p</a>' % i for i in range(20))]
    nettools.sleep(0.05)  # the crawl lasts long enough for the bar to be drawn
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<p>a page</p>"]


def crawl_on_a_tty(url: str, **env: str) -> bytes:
    """``nettools crawl URL`` with stderr on a pseudo-terminal; what the terminal got.
    ``CI`` is unset unless given: CI services set it, and it turns the bar off."""
    master, slave = pty.openpty()
    environ = clean_env({"TERM": "xterm-256color", **NO_PROXY, **env})
    for name in ("CI", "NO_COLOR", "FORCE_COLOR"):
        if name not in env:
            environ.pop(name, None)
    proc = subprocess.Popen([sys.executable, "-m", "nettools", "crawl", url, "-c", "2"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=environ)  # fmt: skip
    os.close(slave)
    out = b""
    try:
        for _ in range(10_000):
            readable, _, _ = select.select([master], [], [], 30)
            if not readable:
                break
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the terminal's other side has closed
                break
            if not chunk:
                break
            out += chunk
    finally:
        os.close(master)
        proc.stdout.close()
        proc.wait(30)
    assert proc.returncode == 0
    return out


def screen(out: bytes) -> str:
    """What the terminal shows, colours and cursor moves aside."""
    return ANSI.sub(b"", out).decode()


def test_log_lines_print_whole_above_the_bar():
    with ServerThread(site) as srv:
        url = srv.url
        shown = screen(crawl_on_a_tty(url + "/"))
    warning = (f"nettools: WARNING nettools.crawl: {url}/robots.txt answered 500: "
               "crawling as if it allowed all")  # fmt: skip
    pieces = re.split(r"\r\n|\r|\n", shown)
    assert any("requests" in p and p.startswith("crawl ") for p in pieces), shown  # the bar
    assert warning in pieces, shown  # on a line of its own, not glued onto the bar


def test_no_color_keeps_the_bar_and_takes_its_colours():
    with ServerThread(site) as srv:
        colored = crawl_on_a_tty(srv.url + "/")
        plain = crawl_on_a_tty(srv.url + "/", NO_COLOR="1")
    assert b" requests" in colored and b"\x1b[38;" in colored
    assert b" requests" in plain and b"\x1b[38;" not in plain
    assert b'"pages": 21,' in plain  # the bar changed nothing else


def test_no_bar_in_ci():
    with ServerThread(site) as srv:
        shown = screen(crawl_on_a_tty(srv.url + "/", CI="true"))
    assert "robots.txt answered 500" in shown
    assert "requests" not in shown.replace('"requests"', "")  # the summary's key aside
