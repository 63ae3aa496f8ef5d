"""recipes/feedscraper.py as a program: feeds served by the stdlib, posted with urllib."""

from __future__ import annotations

import http.server
import threading
import urllib.request

import pytest
from helpers.paths import FEED_FIXTURES as FIXTURES
from helpers.recipes import Recipe

LOCAL = "127.0.0.1"

pytestmark = pytest.mark.timeout(60)



class _FeedHandler(http.server.BaseHTTPRequestHandler):
    """``/f/NAME`` serves a fixture; ``/together/NAME`` does too, but only once
    three such requests are in flight at the same time."""

    def do_GET(self):
        if self.path.startswith("/together/"):
            try:
                self.server.together.wait()
            except threading.BrokenBarrierError:
                self.send_error(504, "requests were not concurrent")
                return
        name = self.path.rsplit("/", 1)[1]
        path = FIXTURES / name
        if not path.is_file():
            self.send_error(404)
            return
        body = path.read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def feed_site():
    httpd = http.server.ThreadingHTTPServer((LOCAL, 0), _FeedHandler)
    httpd.together = threading.Barrier(3, timeout=15)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOCAL}:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def post(port: int, urls: list[str]) -> str:
    data = "".join(u + "\n" for u in urls).encode()
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(f"http://{LOCAL}:{port}/", data=data, timeout=30) as resp:
        return resp.read().decode()


def test_feedscraper_returns_titles_in_order_fetching_concurrently(feed_site):
    with Recipe("feedscraper.py", "--port", "0") as recipe:
        _, port = recipe.tcp_address()
        text = post(port, [f"{feed_site}/f/atom10.xml", f"{feed_site}/missing",
                           f"{feed_site}/f/rss20.xml"])  # fmt: skip
        assert text.splitlines() == [
            "Atom 1.0 Fixture",
            f"error: {feed_site}/missing: HTTP 404",
            "RSS 2.0 Fixture \u2013 caf\u00e9",
        ]
        # Three feeds the server answers only while all three are in flight.
        names = ["rss090.rdf", "rss10.rdf", "atom03.xml"]
        text = post(port, [f"{feed_site}/together/{n}" for n in names])
        assert text.splitlines() == ["RSS 0.90 Fixture", "RSS 1.0 Fixture", "Atom 0.3 Fixture"]
        code, _, err = recipe.stop()
    assert code == 0, err
