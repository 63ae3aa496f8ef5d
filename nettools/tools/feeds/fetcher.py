"""Fetching and parsing feeds concurrently: the library side of ``nettools feeds``.

    from nettools.web.client import HttpClient
    from nettools.tools.feeds.fetcher import FeedFetcher, fetch_feeds

    with HttpClient() as client:
        fetcher = FeedFetcher(client, timeout=20)
        for result in fetch_feeds(urls, fetcher, concurrency=16, deadline=60):
            print(result.title if result.ok else result.error)

Feeds are fetched by nettools' client (timeouts, size cap, redirects) and
parsed by ``feedparser`` from the bytes we fetched -- feedparser never touches
the network.  Every URL gets its own ``FeedResult``, error or not, so one bad
feed never hides the others.  With a ``FeedCache`` requests are conditional
(ETag / Last-Modified) and a 304 is answered from the cached body; a 410 marks
the feed gone; a permanent redirect is reported as ``moved_to``.
"""

from __future__ import annotations

import io
import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import feedparser

from ...kernel import tpool
from ...kernel.greenthread import GreenThread
from ...kernel.pool import GreenPool
from ...kernel.timeout import Timeout
from ...web.client import FetchError, HttpClient
from ..fetch import INTERRUPTED, Halt
from .cache import FeedCache

__all__ = ["FeedEntry", "FeedResult", "FeedFetcher", "fetch_feeds", "parse_feed", "read_opml"]

ACCEPT = (
    "application/atom+xml, application/rss+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.8, text/xml;q=0.8, */*;q=0.5"
)
PERMANENT = (301, 308)
#: Feeds larger than this are parsed in the thread pool: parsing a few MiB
#: takes long enough to stall every other greenthread of a service.
PARSE_INLINE_LIMIT = 256 * 1024


@dataclass
class FeedEntry:
    title: str
    link: str
    published: str | None  # ISO 8601 (UTC) when the feed gives a date


@dataclass
class FeedResult:
    """One feed: its title, link and newest entries, or why there are none."""

    url: str
    status: int | None = None
    title: str | None = None
    link: str | None = None
    version: str | None = None  # feedparser's name of the format: rss20, atom10, ...
    entries: list[FeedEntry] = field(default_factory=list)
    final_url: str | None = None
    moved_to: str | None = None  # where a permanent redirect (301/308) points
    gone: bool = False  # 410: the publisher removed the feed
    cached: bool = False  # body from the cache (304, or gone known before)
    bozo: bool = False  # malformed, but feedparser got something out of it
    bozo_error: str | None = None
    error: str | None = None
    kind: str | None = None
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ok"] = self.ok
        d["elapsed"] = round(self.elapsed, 6)
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def fail(self, kind: str, message: str) -> FeedResult:
        self.kind = kind
        self.error = f"{kind}: {message}"
        return self


def parse_feed(body: bytes, url: str, content_type: str | None = None) -> feedparser.FeedParserDict:
    """Parse ``body`` with feedparser as a stream, so it never fetches anything;
    ``url`` is the base for relative links."""
    # Without a Content-Type feedparser flags every feed as malformed; a
    # server that names none has at least sent us something to parse as XML.
    headers = {"content-location": url, "content-type": content_type or "application/xml"}
    return feedparser.parse(io.BytesIO(body), response_headers=headers)


def _iso(parsed: Any) -> str | None:
    if not parsed:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", parsed)
    except (TypeError, ValueError):
        return None


def newest_entries(entries: list[Any], limit: int) -> list[FeedEntry]:
    """The ``limit`` newest entries: by date when every entry has one, else
    in the feed's own order (feeds list the newest first)."""
    dated = [e.get("published_parsed") or e.get("updated_parsed") for e in entries]
    order = list(range(len(entries)))
    if entries and all(dated):
        order.sort(key=lambda i: tuple(dated[i])[:6], reverse=True)
    out = []
    for i in order[: max(limit, 0)]:
        e = entries[i]
        out.append(
            FeedEntry(
                title=" ".join(str(e.get("title", "")).split()),
                link=str(e.get("link", "")),
                published=_iso(dated[i]),
            )
        )
    return out


class FeedFetcher:
    """Fetches one feed at a time with ``client`` (share it between greenthreads).

    ``timeout`` bounds each feed's whole fetch, ``max_feed`` its size;
    ``redirect_check`` is handed to the client (see ``HttpClient.request``).
    """

    def __init__(
        self,
        client: HttpClient,
        *,
        cache: FeedCache | None = None,
        timeout: float | None = 20.0,
        max_feed: int | None = None,
        entries: int = 5,
        redirect_check: Callable[[str], None] | None = None,
    ) -> None:
        self.client = client
        self.cache = cache
        self.timeout = timeout
        self.max_feed = max_feed
        self.entries = entries
        self.redirect_check = redirect_check

    def fetch(self, url: str) -> FeedResult:
        """Fetch and parse ``url``; never raises for a bad feed."""
        start = time.monotonic()
        result = FeedResult(url=url)
        try:
            self._fetch(url, result)
        finally:
            result.elapsed = time.monotonic() - start
        return result

    def _fetch(self, url: str, result: FeedResult) -> None:
        cached = self.cache.get(url) if self.cache is not None else None
        if cached is not None and cached.gone:
            result.status, result.gone, result.cached = 410, True, True
            result.fail("gone", f"{url}: marked gone (410) by an earlier fetch")
            return
        headers = {"Accept": ACCEPT}
        if cached is not None:
            headers.update(cached.validators())
        try:
            resp = self.client.get(
                url,
                headers=headers,
                timeout=self.timeout,
                max_body=self.max_feed,
                redirect_check=self.redirect_check,
            )
        except FetchError as exc:
            result.fail(exc.kind, exc.message)
            return
        result.status = resp.status
        result.final_url = resp.final_url
        result.moved_to = _moved_to(resp.redirects)
        if resp.status == 304 and cached is not None and cached.body is not None:
            result.cached = True
            body, content_type = cached.body, cached.content_type
            self.cache.touch(url)  # type: ignore[union-attr]
        elif resp.status == 410:
            result.gone = True
            if self.cache is not None:
                self.cache.mark_gone(url)
            result.fail("gone", "410 Gone")
            return
        elif resp.status != 200:
            result.fail("http", f"status {resp.status}")
            return
        else:
            if resp.truncated:
                result.fail("too-large", f"feed larger than {self.max_feed} bytes")
                return
            body, content_type = resp.body, resp.headers.get("Content-Type")
            if self.cache is not None:
                self._remember(url, resp)
        self._parse(body, resp.final_url, content_type, result)

    def _remember(self, url: str, resp: Any) -> None:
        etag = resp.headers.get("ETag")
        modified = resp.headers.get("Last-Modified")
        assert self.cache is not None
        if etag or modified:
            self.cache.store(
                url,
                etag=etag,
                last_modified=modified,
                body=resp.body,
                content_type=resp.headers.get("Content-Type"),
                final_url=resp.final_url,
            )
        else:
            self.cache.forget(url)

    def _parse(self, body: bytes, base: str, content_type: str | None, result: FeedResult) -> None:
        if len(body) > PARSE_INLINE_LIMIT:
            parsed = tpool.execute(parse_feed, body, base, content_type)
        else:
            parsed = parse_feed(body, base, content_type)
        feed = parsed.get("feed", {})
        result.version = parsed.get("version") or None
        if parsed.get("bozo"):
            result.bozo = True
            exc = parsed.get("bozo_exception")
            result.bozo_error = " ".join(str(exc).split()) if exc is not None else None
        if not result.version and not feed.get("title") and not parsed.get("entries"):
            detail = f" ({result.bozo_error})" if result.bozo_error else ""
            result.fail("parse", f"not a feed{detail}")
            return
        result.title = " ".join(str(feed.get("title", "")).split()) or None
        result.link = feed.get("link") or None
        result.entries = newest_entries(parsed.get("entries", []), self.entries)


def _moved_to(redirects: list[tuple[int, str]]) -> str | None:
    """Where the leading run of permanent redirects ends, if it starts with one."""
    moved = None
    for status, location in redirects:
        if status not in PERMANENT:
            break
        moved = location
    return moved


def fetch_feeds(
    urls: Iterable[str],
    fetcher: FeedFetcher,
    *,
    concurrency: int = 16,
    pool: GreenPool | None = None,
    deadline: float | None = None,
    halt: Halt | None = None,
) -> list[FeedResult]:
    """Fetch every feed, at most ``concurrency`` at once (or in a shared
    ``pool``); results in input order.  Feeds still unfinished at ``deadline``
    seconds are stopped and reported with kind ``deadline``; after
    ``halt.stop()`` no feed starts, those in flight are cut after its grace,
    and the feeds not fetched are reported with kind ``interrupted``."""
    urls = list(urls)
    pool = pool if pool is not None else GreenPool(concurrency)
    halt = halt if halt is not None else Halt()
    results: list[FeedResult | None] = [None] * len(urls)
    threads: list[GreenThread] = []

    def run(i: int, url: str) -> None:
        results[i] = halt.run(fetcher.fetch, url)

    def unfinished(url: str) -> FeedResult:
        if halt.stopped:
            return FeedResult(url=url).fail(INTERRUPTED, "not fetched")
        return FeedResult(url=url).fail("deadline", f"not done within the deadline ({deadline:g}s)")

    timer = Timeout(deadline)
    try:
        for i, url in enumerate(urls):
            if halt.stopped:
                break
            threads.append(pool.spawn(run, i, url))
        for gt in threads:
            gt.wait()
    except Timeout as exc:
        if exc is not timer:
            raise
        for gt in threads:
            gt.kill()
    finally:
        timer.cancel()
    return [r if r is not None else unfinished(u) for u, r in zip(urls, results, strict=True)]


def read_opml(path: str) -> list[str]:
    """The feed URLs (``xmlUrl`` of every outline, in document order) of an OPML file.

    Raises ValueError for a file that is not OPML."""
    try:
        tree = ET.parse(path)
    except ET.ParseError as exc:
        raise ValueError(f"{path}: not valid OPML: {exc}") from None
    root = tree.getroot()
    if root.tag.lower() != "opml":
        raise ValueError(f"{path}: not OPML (root element <{root.tag}>)")
    urls: list[str] = []
    seen: set[str] = set()
    for outline in root.iter("outline"):
        url = (outline.get("xmlUrl") or outline.get("xmlurl") or "").strip()
        if url and url not in seen:
            seen.add(url)
            urls.append(url)
    return urls
