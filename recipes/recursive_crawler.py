"""A recursive web crawler: each fetch spawns the fetches of the links it finds.

Every page is fetched in a greenthread of one ``GreenPool``; when a page's
links come back, new ones (same host, not seen before) are spawned into the
same pool.  ``pool.waitall()`` returns once the pool is idle: no fetch is
running and none was spawned, so the whole site has been seen.  The pool's
size bounds how many requests are in flight at once.  (When the pool is full,
``spawn_n`` from inside it runs the fetch in the caller instead of waiting.)

Requests go through ``nettools.web.client.HttpClient``: libcurl driven by
the hub, keep-alive per host.  Links come from a real HTML parser.  It prints
one line per page -- status and URL -- and the number of pages on stderr.

Run it:  python recipes/recursive_crawler.py http://127.0.0.1:8000/
(``nettools crawl`` is the complete tool: robots.txt, politeness, reports.)
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urldefrag, urljoin, urlsplit

from selectolax.lexbor import LexborHTMLParser

import nettools
from nettools.web.client import FetchError, HttpClient


def links_of(html: bytes, page_url: str) -> set[str]:
    """Absolute http(s) URLs (without #fragment) of a page's a[href] links."""
    found = set()
    for node in LexborHTMLParser(html).css("a[href]"):
        url, _ = urldefrag(urljoin(page_url, node.attributes.get("href") or ""))
        if urlsplit(url).scheme in ("http", "https"):
            found.add(url)
    return found


def fetch(url: str, seen: set[str], pool: nettools.GreenPool, client: HttpClient) -> None:
    try:
        resp = client.get(url)
    except FetchError as exc:
        print(f"ERR {url} {exc}", flush=True)
        return
    print(f"{resp.status} {url}", flush=True)
    if resp.content_type != "text/html":
        return
    host = urlsplit(url).netloc
    for link in links_of(resp.body, resp.final_url):
        if link not in seen and urlsplit(link).netloc == host:
            seen.add(link)
            pool.spawn_n(fetch, link, seen, pool, client)


def crawl(start_url: str, concurrency: int = 20) -> set[str]:
    """Every URL of ``start_url``'s host reachable from it."""
    pool = nettools.GreenPool(concurrency)
    seen = {start_url}
    with HttpClient(per_host=concurrency) as client:
        pool.spawn_n(fetch, start_url, seen, pool, client)
        pool.waitall()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Crawl one site recursively with a GreenPool.")
    parser.add_argument("url", help="where to start")
    parser.add_argument("--concurrency", type=int, default=20, help="max fetches at once")
    args = parser.parse_args(argv)
    seen = crawl(args.url, args.concurrency)
    print(f"{len(seen)} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
