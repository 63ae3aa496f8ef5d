"""``nettools crawl --metrics-file``: a crawl's figures for a CI dashboard."""

from __future__ import annotations

import pytest
from helpers.cli import NO_PROXY, run_cli
from helpers.metrics import Scrape
from helpers.wsgi import ServerThread

pytestmark = pytest.mark.timeout(60)


def site(environ, start_response):
    path = environ["PATH_INFO"]
    pages = {"/": b'<a href="/a">a</a> <a href="/b">b</a> <a href="/gone">x</a>',
             "/a": b'<a href="/">home</a>', "/b": b"<p>b</p>"}  # fmt: skip
    if path in pages:
        start_response("200 OK", [("Content-Type", "text/html")])
        return [pages[path]]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not here"]


def test_crawl_writes_its_metrics_at_the_end(tmp_path):
    path = tmp_path / "crawl.prom"
    with ServerThread(site) as srv:
        res = run_cli("crawl", srv.url + "/", "--metrics-file", str(path), env=NO_PROXY)
    assert res.returncode == 2, res.stderr  # a broken link
    m = Scrape(path.read_text())
    assert m.value("nettools_crawl_pages", service="crawl") == 4  # /gone included
    assert m.value("nettools_crawl_broken_links") == 1
    assert m.value("nettools_crawl_interrupted") == 0
    assert m.labels("nettools_http_client_requests_total", "status_class") == {"2xx": 3, "4xx": 1}
    assert m.value("nettools_crawl_requests_total") >= 4  # and robots.txt
    assert m.value("nettools_run_exit_code") == 2
