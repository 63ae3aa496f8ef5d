"""A producer-consumer web crawler: a frontier queue and a fixed set of workers.

Fetchers produce: each puts the links it finds on the frontier ``Queue``.
Workers consume: ``--workers`` greenthreads take URLs off the queue, skip
those already seen or on another host, and fetch the rest.  ``queue.join()``
returns when every URL put on the queue has been handled (``task_done``), so
the crawl is complete; then the workers are told to stop.

It finds the same pages as recipes/recursive_crawler.py; only the shape of
the concurrency differs (a fixed number of long-lived workers instead of one
greenthread per page).

Run it:  python recipes/producer_consumer.py http://127.0.0.1:8000/
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


def fetch(url: str, client: HttpClient, frontier: nettools.Queue) -> None:
    """Fetch one page and put its links on the frontier (the producer side)."""
    try:
        resp = client.get(url)
    except FetchError as exc:
        print(f"ERR {url} {exc}", flush=True)
        return
    print(f"{resp.status} {url}", flush=True)
    if resp.content_type == "text/html":
        for link in links_of(resp.body, resp.final_url):
            frontier.put(link)


def crawl(start_url: str, workers: int = 20) -> set[str]:
    """Every URL of ``start_url``'s host reachable from it."""
    host = urlsplit(start_url).netloc
    frontier = nettools.Queue()
    seen: set[str] = set()

    def worker(client: HttpClient) -> None:  # the consumer side
        while True:
            url = frontier.get()
            try:
                if url is None:
                    return
                if url not in seen and urlsplit(url).netloc == host:
                    seen.add(url)
                    fetch(url, client, frontier)
            finally:
                frontier.task_done()

    with HttpClient(per_host=workers) as client:
        frontier.put(start_url)
        threads = [nettools.spawn(worker, client) for _ in range(workers)]
        frontier.join()
        for _ in threads:
            frontier.put(None)
        for thread in threads:
            thread.wait()
    return seen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Crawl one site with a queue and workers.")
    parser.add_argument("url", help="where to start")
    parser.add_argument("--workers", type=int, default=20, help="fetching greenthreads")
    args = parser.parse_args(argv)
    seen = crawl(args.url, args.workers)
    print(f"{len(seen)} pages", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
