"""The feed scraper: a web service that fetches posted feed URLs concurrently.

POST newline-separated feed URLs to ``/`` and get their titles back, one per
line, in the order posted.  The pattern is in three lines of ``app``:

* one ``GreenPool`` for the whole process, created once at import -- every
  request's fetches share it, so however many clients post at the same time,
  no more than ``--concurrency`` feeds are fetched at once;
* a ``GreenPile`` per request, spawning into that pool;
* iterating the pile yields the results in spawn order, as each finishes.

Feeds are fetched with nettools' green HTTP client (timeouts, size cap) and
parsed by ``feedparser`` from the bytes fetched, so feedparser never does
blocking I/O of its own.  A real deployment would also refuse private
addresses; ``nettools feeds serve`` does.

Run it:  python recipes/feedscraper.py --port 9010
Try it:  printf 'https://blog.python.org/feeds/posts/default\\n' |
             curl --data-binary @- http://127.0.0.1:9010/
"""

from __future__ import annotations

import argparse
import io
import json
import sys

import feedparser

import nettools
from nettools.green import socket
from nettools.web import wsgi
from nettools.web.client import FetchError, HttpClient

#: The one pool all requests share.
pool = nettools.GreenPool(200)
client = HttpClient(read_timeout=10, max_body=2 * 2**20)

MAX_URLS = 100


def fetch_title(url: str) -> str:
    """The feed's title, or a line saying why there is none."""
    try:
        resp = client.get(url, timeout=20)
    except FetchError as exc:
        return f"error: {exc}"
    if resp.status != 200:
        return f"error: {url}: HTTP {resp.status}"
    parsed = feedparser.parse(io.BytesIO(resp.body), response_headers=dict(resp.headers))
    return " ".join(parsed.feed.get("title", "(untitled)").split())


def app(environ: dict, start_response) -> list[bytes]:
    """WSGI: POST / with URLs -> titles; anything else -> a usage line."""
    if environ["REQUEST_METHOD"] != "POST":
        body = b"POST feed URLs, one per line, to get their titles back.\n"
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]
    urls = [line.strip() for line in environ["wsgi.input"].read(64 * 1024).splitlines()]
    urls = [u.decode("utf-8", "replace") for u in urls if u][:MAX_URLS]
    pile = nettools.GreenPile(pool)
    for url in urls:
        pile.spawn(fetch_title, url)
    titles = "".join(f"{title}\n" for title in pile)
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
    return [titles.encode("utf-8")]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Serve feed titles for posted feed URLs.")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9010, help="port, 0 for any (default: 9010)")
    parser.add_argument("--concurrency", type=int, default=200, help="feeds fetched at once")
    args = parser.parse_args(argv)
    pool.resize(args.concurrency)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = nettools.listen((args.host, args.port), family=family)
    host, port = sock.getsockname()[:2]
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    print(json.dumps({"event": "listening", "service": "feedscraper", "address": address}),
          flush=True)  # fmt: skip

    wsgi.server(sock, app, log_output=False, handle_signals=True, drain_timeout=5)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
