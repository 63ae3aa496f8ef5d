"""Fetch many URLs at once with plain ``urllib``, made green by ``import_patched``.

``nettools.import_patched("urllib.request")`` imports a private copy of
``urllib.request`` whose sockets (and everything below: ``http.client``,
``ssl``, DNS) are nettools' green ones, without monkey-patching the rest of the
program.  ``GreenPool.imap`` then runs ``fetch`` for many URLs concurrently and
yields the results in input order, never more than ``--concurrency`` in flight.

It prints one line per URL -- status, body size, URL -- and a summary on stderr.
The exit status is 1 if any URL could not be fetched (HTTP error statuses are
reported but count as fetched).

Run it:  python recipes/webcrawler.py https://www.python.org/ https://pypi.org/
"""

from __future__ import annotations

import argparse
import sys
import time

import nettools

request = nettools.import_patched("urllib.request")


def fetch(url: str, timeout: float = 10.0) -> tuple[str, int | None, int | str]:
    """Returns ``(url, status, body size)``, or ``(url, None, error text)``."""
    try:
        with request.urlopen(url, timeout=timeout) as response:
            return url, response.status, len(response.read())
    except request.HTTPError as exc:  # a 4xx/5xx answer still is an answer
        return url, exc.code, len(exc.read())
    except (OSError, ValueError) as exc:  # URLError is an OSError
        return url, None, f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Fetch URLs concurrently with green urllib.")
    parser.add_argument("urls", nargs="+", help="URLs to fetch")
    parser.add_argument("--concurrency", type=int, default=20, help="max fetches at once")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    args = parser.parse_args(argv)

    pool = nettools.GreenPool(args.concurrency)
    start = time.monotonic()
    failed = 0
    for url, status, size in pool.imap(fetch, args.urls, [args.timeout] * len(args.urls)):
        if status is None:
            failed += 1
            print(f"ERR {size} {url}")
        else:
            print(f"{status} {size} {url}")
    took = time.monotonic() - start
    print(f"fetched {len(args.urls)} URLs in {took:.2f}s, {failed} failed", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
