"""Raw green socket clients: fetch several HTTP URLs at once with a GreenPile.

Each URL gets a greenthread that opens a plain TCP connection, writes an
HTTP/1.0 GET by hand and reads until the server closes.  While one waits for
its server the others run, so the total time is about that of the slowest
fetch, not the sum.  The GreenPile hands the results back in the order the URLs
were given, whatever order they finished in.

It prints one line per URL: the URL, the response's status line and its size.
The exit status is 1 if any URL could not be fetched at all.

Run it:  python recipes/connect.py http://127.0.0.1:8000/ http://localhost:8000/a.html
"""

from __future__ import annotations

import argparse
import sys
from urllib.parse import urlsplit

import nettools
from nettools.green import socket


def fetch(url: str, timeout: float) -> tuple[str, bytes]:
    """GET ``url`` over a raw socket; returns ``(status_line, whole_response)``."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"not a plain http:// URL: {url}")
    host, port = parts.hostname, parts.port or 80
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    # create_connection resolves the name without blocking the other greenthreads.
    with socket.create_connection((host, port), timeout=timeout) as sock:
        request = f"GET {path} HTTP/1.0\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n"
        sock.sendall(request.encode("ascii"))
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    response = b"".join(chunks)
    status = response.split(b"\r\n", 1)[0].decode("latin-1")
    return status, response


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="GET several http:// URLs concurrently.")
    parser.add_argument("urls", nargs="+", help="http://host:port/path URLs")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per socket operation")
    parser.add_argument("--concurrency", type=int, default=100, help="max fetches at once")
    args = parser.parse_args(argv)

    def attempt(url: str) -> tuple[str, str, int] | tuple[str, None, str]:
        try:
            status, response = fetch(url, args.timeout)
        except (OSError, ValueError) as exc:
            return url, None, f"{type(exc).__name__}: {exc}"
        return url, status, len(response)

    pile = nettools.GreenPile(args.concurrency)
    for url in args.urls:
        pile.spawn(attempt, url)

    failed = 0
    for url, status, detail in pile:
        if status is None:
            failed += 1
            print(f"{url} error {detail}")
        else:
            print(f"{url} {status} ({detail} bytes)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
