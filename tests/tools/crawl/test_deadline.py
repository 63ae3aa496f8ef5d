"""``crawl --timeout`` bounds each whole request, however steadily a server drips it."""

from __future__ import annotations

import json

import pytest
from helpers.cli import last_json, run_cli
from helpers.wsgi import ServerThread

import nettools

pytestmark = pytest.mark.timeout(60)


def dripping_site(environ, start_response):
    """``/`` links to ``/drip.html``, which sends a byte every 200 ms for 8 s:
    never a 1 s silence, never done within 1 s."""
    if environ["PATH_INFO"] == "/":
        start_response("200 OK", [("Content-Type", "text/html")])
        return [b'<!doctype html><a href="/drip.html">drip</a> <a href="/ok.html">ok</a>']
    if environ["PATH_INFO"] == "/drip.html":
        start_response("200 OK", [("Content-Type", "text/html")])
        return drip()
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b"<!doctype html>fine"]


def drip():
    for _ in range(40):
        nettools.sleep(0.2)
        yield b" "


def test_a_dripping_page_is_cut_at_the_timeout_and_reported():
    with ServerThread(dripping_site) as srv:
        base = srv.url
        proc = run_cli("crawl", base + "/", "--timeout", "1s", "--retries", "0",
                       "--ignore-robots", "--format", "json")  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    report = json.loads(proc.stdout)
    broken = {b["url"]: b for b in report["broken"]}
    assert set(broken) == {base + "/drip.html"}, report
    assert "no complete response within 1s" in json.dumps(broken), report
    assert last_json(proc.stderr)["pages"] == 3
