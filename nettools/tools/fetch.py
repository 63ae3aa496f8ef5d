"""Fetch many URLs concurrently: the library side of ``nettools fetch``.

    from nettools.web.client import HttpClient
    from nettools.tools.fetch import fetch_many

    with HttpClient() as client:
        for result in fetch_many(urls, client, concurrency=32):
            print(result.line())

Results come in input order (``ordered=True``) or as they complete.  With
``output_dir`` each body is saved under a safe file name made from its input
position and URL.  ``Halt.stop()`` (from a signal handler's greenthread, say)
ends a run politely: no new fetches, those in flight cut after a grace, and
every URL still gets a result (kind ``interrupted`` for those not fetched).
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

from ..kernel.greenthread import GreenletExit, current_greenthread, kill, spawn_after
from ..kernel.pool import GreenPool
from ..kernel.queue import Queue
from ..web.client import FetchError, HttpClient

__all__ = ["FetchResult", "Halt", "HttpClient", "fetch_one", "fetch_many", "safe_name",
           "read_url_lines", "INTERRUPTED"]

#: The ``kind`` of a result whose fetch was never done or was cut by ``Halt``.
INTERRUPTED = "interrupted"


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

    @property
    def interrupted(self) -> bool:
        """Not fetched: stopped before it started, or cut while in flight."""
        return self.kind == INTERRUPTED

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


class Halt:
    """A polite stop for a run of fetches: after ``stop()`` no new fetch starts,
    and those in flight get ``grace`` seconds before they are cut."""

    def __init__(self, grace: float = 2.0) -> None:
        self.grace = grace
        self.stopped = False
        self._running: set[Any] = set()

    @property
    def running(self) -> int:
        """How many calls of ``run`` are under way."""
        return len(self._running)

    def stop(self) -> None:
        """Start no more fetches; cut the running ones after the grace."""
        if self.stopped:
            return
        self.stopped = True
        spawn_after(self.grace, self._cut)

    def _cut(self) -> None:
        for gt in list(self._running):
            kill(gt)

    def run(self, function: Any, *args: Any, **kwargs: Any) -> Any:
        """``function(*args, **kwargs)`` in the calling greenthread, or None if
        stopped before it began or cut while running."""
        if self.stopped:
            return None
        gt = current_greenthread()
        self._running.add(gt)
        try:
            return function(*args, **kwargs)
        except GreenletExit:  # cut by _cut: the caller reports it as interrupted
            return None
        finally:
            self._running.discard(gt)


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
    halt: Halt | None = None,
    **kw: Any,
) -> Iterator[FetchResult]:
    """Fetch every URL, at most ``concurrency`` at once; yields one
    ``FetchResult`` per URL in input order (``ordered``) or in completion
    order.  After ``halt.stop()`` the URLs not fetched come last, in input
    order, with kind ``interrupted``.  ``kw`` goes to ``fetch_one``."""
    halt = halt if halt is not None else Halt()
    pool = GreenPool(concurrency)
    done: Queue = Queue()

    def job(i: int, u: str) -> None:
        try:
            result = halt.run(fetch_one, client, i, u, **kw)
        except Exception as exc:  # handed to the consumer, not lost in a log
            done.put((i, u, None, exc))
        else:
            done.put((i, u, result, None))

    held: dict[int, FetchResult] = {}  # finished, waiting for their turn (ordered)
    unfetched: list[FetchResult] = []
    next_index = 0

    def take() -> Iterator[FetchResult]:
        nonlocal next_index
        i, u, result, exc = done.get()
        if exc is not None:
            raise exc
        if result is None:
            result = not_fetched(i, u)
        if not ordered:
            if result.interrupted:
                unfetched.append(result)
            else:
                yield result
            return
        held[i] = result
        while next_index in held:
            yield held.pop(next_index)
            next_index += 1

    count = 0
    rest: list[tuple[int, str]] = []
    for index, url in enumerate(urls):
        if halt.stopped:
            rest.append((index, url))
            continue
        count += 1
        pool.spawn_n(job, index, url)
        while not done.empty():  # hand out what finished while we were spawning
            count -= 1
            yield from take()
    for _ in range(count):
        yield from take()
    unfetched.extend(not_fetched(i, u) for i, u in rest)
    yield from sorted(unfetched, key=lambda r: r.index)


def not_fetched(index: int, url: str) -> FetchResult:
    """The result for a URL a ``Halt`` kept from being fetched."""
    return FetchResult(index=index, url=url, error=f"{INTERRUPTED}: not fetched", kind=INTERRUPTED)


def read_url_lines(lines: Iterable[str]) -> Iterator[str]:
    """URLs from text lines: blank lines and ``#`` comments are skipped."""
    for line in lines:
        line = line.strip()
        if line and not line.startswith("#"):
            yield line
