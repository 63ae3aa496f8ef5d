"""Fetch many URLs concurrently: the library side of ``nettools fetch``.

    from nettools.web.client import HttpClient
    from nettools.tools.fetch import fetch_many

    with HttpClient() as client:
        for result in fetch_many(urls, client, concurrency=32):
            print(result.line())

Results come in input order (``ordered=True``) or as they complete.  With
``output_dir`` each body is saved under a safe file name made from its input
position and URL.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

from ..pool import GreenPool
from ..queue import Queue
from ..web.client import FetchError, HttpClient

__all__ = ["FetchResult", "fetch_one", "fetch_many", "safe_name", "read_url_lines"]


@dataclass
class FetchResult:
    """What happened to one URL."""

    index: int
    url: str
    status: int | None = None
    size: int = 0
    elapsed: float = 0.0
    final_url: str | None = None
    content_type: str = ""
    truncated: bool = False
    redirects: list[tuple[int, str]] = field(default_factory=list)
    error: str | None = None
    kind: str | None = None
    saved: str | None = None

    @property
    def ok(self) -> bool:
        """An answer below 400."""
        return self.status is not None and self.status < 400

    def line(self) -> str:
        """One text line: status, size, time, final URL (or the error)."""
        took = f"{self.elapsed:.3f}s"
        if self.status is None:
            return f"ERR {'-':>10} {took:>8} {self.url}  ({self.error})"
        size = f"{self.size}{'+' if self.truncated else ''}"
        return f"{self.status:<3} {size:>10} {took:>8} {self.final_url}"

    def to_json(self) -> str:
        d = asdict(self)
        d["ok"] = self.ok
        d["elapsed"] = round(self.elapsed, 6)
        d["redirects"] = [{"status": s, "url": u} for s, u in self.redirects]
        return json.dumps(d)


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(index: int, url: str, limit: int = 120) -> str:
    """A file name for ``url``'s body: its input position, then host and path,
    with everything but ``[A-Za-z0-9._-]`` replaced; never hidden, never a path."""
    parts = urlsplit(url)
    raw = (parts.hostname or "") + (parts.path or "/")
    if parts.query:
        raw += "_" + parts.query
    slug = _UNSAFE.sub("_", raw).strip("._") or "index"
    return f"{index:05d}-{slug[:limit]}"


def fetch_one(
    client: HttpClient,
    index: int,
    url: str,
    *,
    method: str = "GET",
    headers: Mapping[str, str] | None = None,
    timeout: float | None = None,
    output_dir: str | None = None,
) -> FetchResult:
    """Fetch ``url``; never raises for a failed fetch (see ``FetchResult.error``)."""
    start = time.monotonic()
    result = FetchResult(index=index, url=url)
    try:
        resp = client.request(method, url, headers=headers, timeout=timeout)
    except FetchError as exc:
        result.error, result.kind = f"{exc.kind}: {exc.message}", exc.kind
        result.elapsed = time.monotonic() - start
        return result
    result.status = resp.status
    result.size = len(resp.body)
    result.final_url = resp.final_url
    result.content_type = resp.content_type
    result.truncated = resp.truncated
    result.redirects = list(resp.redirects)
    result.elapsed = resp.elapsed
    if resp.status >= 400:
        result.kind = "http"
        result.error = f"http: status {resp.status}"
    if output_dir is not None and method != "HEAD":
        path = os.path.join(output_dir, safe_name(index, url))
        with open(path, "wb") as f:
            f.write(resp.body)
        result.saved = path
    return result


def fetch_many(
    urls: Iterable[str],
    client: HttpClient,
    *,
    concurrency: int = 32,
    ordered: bool = True,
    **kw: Any,
) -> Iterator[FetchResult]:
    """Fetch every URL, at most ``concurrency`` at once; yields ``FetchResult``s
    in input order (``ordered``) or in completion order.  ``kw`` goes to
    ``fetch_one``."""
    pool = GreenPool(concurrency)
    if ordered:
        yield from pool.starmap(lambda i, u: fetch_one(client, i, u, **kw), enumerate(urls))
        return
    done: Queue = Queue()

    def job(i: int, u: str) -> None:
        try:
            done.put((fetch_one(client, i, u, **kw), None))
        except Exception as exc:  # handed to the consumer, not lost in a log
            done.put((None, exc))

    def take() -> FetchResult:
        result, exc = done.get()
        if exc is not None:
            raise exc
        return result

    count = 0
    for index, url in enumerate(urls):
        count += 1
        pool.spawn_n(job, index, url)
        while not done.empty():  # hand out what finished while we were spawning
            count -= 1
            yield take()
    for _ in range(count):
        yield take()


def read_url_lines(lines: Iterable[str]) -> Iterator[str]:
    """URLs from text lines: blank lines and ``#`` comments are skipped."""
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            yield line
