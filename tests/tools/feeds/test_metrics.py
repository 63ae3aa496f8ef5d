"""``nettools feeds serve --metrics``: HTTP requests by status class, their
durations, and the feeds fetched."""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest
from helpers.cli import NO_PROXY, Cli
from helpers.metrics import scrape
from helpers.paths import FEED_FIXTURES
from helpers.wsgi import ServerThread

pytestmark = pytest.mark.timeout(60)


def feed_site(environ, start_response):
    if environ["PATH_INFO"] == "/feed":
        start_response("200 OK", [("Content-Type", "application/atom+xml")])
        return [(FEED_FIXTURES / "atom10.xml").read_bytes()]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no"]


def call(url: str, body: bytes | None = None) -> int:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, data=body), timeout=20) as resp:
            resp.read()
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_feeds_service_metrics():
    with ServerThread(feed_site) as site, Cli(
        "feeds", "serve", "--allow-private", "--metrics", "127.0.0.1:0", env=NO_PROXY
    ) as srv:
        ready = srv.ready()
        base = f"http://{ready['address']}"
        urls = f"{site.url}/feed\n{site.url}/missing\n".encode()
        assert call(base + "/", urls) == 200
        assert call(base + "/") == 200
        assert call(base + "/nowhere") == 404
        m = scrape(ready["metrics"])
        assert m.labels("nettools_http_requests_total", "status_class") == {"2xx": 2, "4xx": 1}
        assert m.value("nettools_http_request_duration_seconds_count", service="feeds") == 3
        assert m.value("nettools_feeds_fetched_total") == 2
        assert m.value("nettools_feeds_failed_total") == 1
        assert m.value("nettools_received_bytes_total") == len(urls)
        assert m.value("nettools_sent_bytes_total") > 0
        assert m.value("nettools_connections_accepted_total") == 3
        assert srv.stop()[0] == 0
