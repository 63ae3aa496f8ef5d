"""The crawl's fetch-and-parse step, behind one small interface.

The engine decides *what* to request and what to make of the answer; a
``Fetcher`` does the request and reads the page.  ``LocalFetcher`` does both in
this process with an ``HttpClient``; the distributed crawl's
``Coordinator`` (``distributed/coordinator.py``) sends the same call to a
worker and waits for its answer.  Both hand back a ``Fetched``: what the engine records
about the response, plus the links of an HTML page or a stylesheet
(normalised, as ``(key, url, fragment)``) and a page's anchors when asked for,
and the body only when asked for (robots.txt and sitemaps).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from yarl import URL

from ...web.client import HttpClient
from .css import CSS_TYPES, stylesheet_links
from .links import extract
from .urls import Resolver

__all__ = ["Fetched", "Fetcher", "LocalFetcher", "crawl_client", "HTML_TYPES", "KEPT_HEADERS"]

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
#: The response headers the engine reads (the rest are not passed on).
KEPT_HEADERS = ("Location", "Retry-After")


@dataclass
class Fetched:
    """One response as the engine sees it."""

    status: int
    final_url: str
    content_type: str = ""
    size: int = 0
    truncated: bool = False
    elapsed: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)  # KEPT_HEADERS only
    body: bytes | None = None  # only when asked for
    links: list[tuple[str, URL, str]] | None = None  # an HTML or CSS 2xx answer's, when asked
    anchors: set[str] | None = None  # an HTML page's ids and a[name], when asked for


class Fetcher(Protocol):
    """Does one request (raising ``FetchError`` when no response came)."""

    def fetch(
        self, method: str, url: URL, *, follow_redirects: bool, max_body: int | None = None,
        links: bool = False, anchors: bool = False, body: bool = False,
    ) -> Fetched:
        """``method`` on ``url``.  ``links``: parse an HTML or CSS 2xx answer for
        its links (and, with ``anchors``, an HTML page's anchors); ``anchors`` alone: the
        anchors of an HTML answer (whatever its status), read against its
        final URL; ``body``: keep the body."""
        ...

    def summary(self) -> dict | None:
        """Extra figures for the crawl's summary (None: nothing to add)."""
        ...

    def close(self) -> None: ...


def crawl_client(
    *, timeout: float, max_body: int, per_host: int, user_agent: str | None
) -> HttpClient:
    """The client of a crawl's requests, in the crawling process or in a worker:
    ``timeout`` bounds each whole request (hops and body), each read within
    it, and connecting too (up to 10s)."""
    return HttpClient(connect_timeout=min(10.0, timeout), read_timeout=timeout, timeout=timeout,
                      max_body=max_body, per_host=per_host, user_agent=user_agent)  # fmt: skip


class LocalFetcher:
    """Fetches with an ``HttpClient`` and parses in this process."""

    def __init__(self, client: HttpClient | Any) -> None:
        self.client = client
        # Pages of one site repeat their links: each spelling is worked out once.
        self._resolver = Resolver()

    def fetch(
        self, method: str, url: URL, *, follow_redirects: bool, max_body: int | None = None,
        links: bool = False, anchors: bool = False, body: bool = False,
    ) -> Fetched:
        resp = self.client.request(
            method, str(url), follow_redirects=follow_redirects, max_body=max_body
        )
        ctype = resp.content_type
        out = Fetched(
            resp.status, resp.final_url, ctype, len(resp.body), resp.truncated, resp.elapsed,
            {h: v for h in KEPT_HEADERS if (v := resp.headers.get(h)) is not None},
            resp.body if body else None,
        )  # fmt: skip
        if ctype in HTML_TYPES:
            if links:
                if 200 <= resp.status < 300:
                    page = extract(resp.body, url)
                    out.links = self._resolver.resolve(page.links, page.base)
                    if anchors:
                        out.anchors = page.anchors
            elif anchors:
                out.anchors = extract(resp.body, URL(resp.final_url)).anchors
        elif links and ctype in CSS_TYPES and 200 <= resp.status < 300:
            out.links = self._resolver.resolve(stylesheet_links(resp.body, resp.charset), url)
        return out

    def summary(self) -> dict | None:
        return None

    def close(self) -> None:
        self.client.close()
