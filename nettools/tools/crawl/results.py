"""What a crawl finds: each ``Link`` met, the ``Broken`` ones, the checked
``Fragment`` links, and the ``CrawlResult`` that holds them with the summary.

A ``Link`` is also the crawl's record while it runs: the engine writes the
outcome of its requests on it, and keeps a few fields of bookkeeping there
(``parsed_url``, ``anchors``, ``children``) that are not part of the result.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Link", "Broken", "Fragment", "CrawlResult", "MAX_REFERRERS", "OUTCOME_FIELDS"]

#: Referrers kept per link (the count is always exact).
MAX_REFERRERS = 100


@dataclass
class Link:
    """One URL the crawl met, and what became of it."""

    url: str
    kind: str  # "page" (in scope: fetched and parsed) or "external" (checked only)
    depth: int
    status: int | None = None
    error: str | None = None
    content_type: str = ""
    size: int = 0
    truncated: bool = False
    redirect: str | None = None  # where a page redirects (normalised)
    final_url: str | None = None
    skipped: str | None = None  # "robots", "scheme" or "stopped": never requested
    method: str = ""
    attempts: int = 0
    elapsed: float = 0.0
    seed: bool = False
    referrers: list[str] = field(default_factory=list)
    referrer_count: int = 0
    redirected_from: list[str] = field(default_factory=list)
    # Bookkeeping, not part of the result.
    #: The URL as a ``yarl.URL`` (``url`` is its string form).
    parsed_url: Any = field(default=None, repr=False, compare=False)
    #: A parsed page's ids and a[name]s, kept when fragments are checked.
    anchors: set[str] | None = field(default=None, repr=False, compare=False)
    #: ``(key, url, via_redirect)`` of what a parsed page leads to, kept with
    #: a depth limit (a shorter path to the page may make them reachable).
    children: list[tuple[str, Any, bool]] | None = field(default=None, repr=False,
                                                         compare=False)  # fmt: skip
    _last_referrer: str | None = field(default=None, repr=False, compare=False)

    @property
    def requested(self) -> bool:
        """Whether a response, or a failure, was recorded."""
        return self.status is not None or self.error is not None

    @property
    def error_kind(self) -> str | None:
        """The kind of transport failure (``FetchError.kind``) that ``error`` reports."""
        return None if self.error is None else self.error.partition(":")[0]

    @property
    def checked(self) -> bool:
        """A link a page, the command line or a sitemap names (the hops of a
        redirect chain belong to the link that starts it)."""
        return bool(self.referrer_count or self.seed)

    def add_referrer(self, url: str) -> None:
        """Count the page ``url`` as linking here (once per page)."""
        # A page's links are admitted in one go (no other page's in between)
        # and each page once, so a referrer seen before is the last one seen:
        # one comparison, and the count stays exact past MAX_REFERRERS.
        if url == self._last_referrer:
            return
        self._last_referrer = url
        self.referrer_count += 1
        if len(self.referrers) < MAX_REFERRERS:
            self.referrers.append(url)

    def outcome(self) -> dict:
        """What visiting the link found (for a crawl's state to keep; see ``apply``)."""
        return {
            "status": self.status, "error": self.error, "content_type": self.content_type,
            "size": self.size, "truncated": self.truncated, "redirect": self.redirect,
            "final_url": self.final_url, "skipped": self.skipped, "method": self.method,
            "attempts": self.attempts, "elapsed": round(self.elapsed, 6),
            "anchors": None if self.anchors is None else sorted(self.anchors),
        }  # fmt: skip

    def apply(self, outcome: dict) -> None:
        """Take back what ``outcome()`` gave (from a crawl's state)."""
        for name in OUTCOME_FIELDS:
            setattr(self, name, outcome[name])
        anchors = outcome.get("anchors")
        self.anchors = None if anchors is None else set(anchors)

    def to_dict(self) -> dict:
        """The result's fields, as the json, jsonl and csv reports give them."""
        return {
            "url": self.url,
            "kind": self.kind,
            "depth": self.depth,
            "status": self.status,
            "error": self.error,
            "content_type": self.content_type,
            "size": self.size,
            "truncated": self.truncated,
            "redirect": self.redirect,
            "final_url": self.final_url,
            "skipped": self.skipped,
            "method": self.method,
            "attempts": self.attempts,
            "elapsed": round(self.elapsed, 6),
            "referrers": self.referrers,
            "referrer_count": self.referrer_count,
        }


#: The fields ``Link.outcome`` gives besides the anchors.
OUTCOME_FIELDS = ("status", "error", "content_type", "size", "truncated", "redirect",
                  "final_url", "skipped", "method", "attempts", "elapsed")  # fmt: skip


@dataclass
class Broken:
    """A link that failed: ``reason`` is one line, ``referrers`` the pages linking to it."""

    url: str
    reason: str
    status: int | None
    referrers: list[str]
    referrer_count: int
    kind: str  # "page", "external" or "fragment"

    def to_dict(self) -> dict:
        """As the json report gives it."""
        return {
            "url": self.url,
            "reason": self.reason,
            "status": self.status,
            "kind": self.kind,
            "referrers": self.referrers,
            "referrer_count": self.referrer_count,
        }


@dataclass
class Fragment:
    """A ``#fragment`` link that was checked against its page's anchors."""

    url: str
    ok: bool
    referrers: list[str]


@dataclass
class CrawlResult:
    """What a crawl found."""

    links: list[Link]
    broken: list[Broken]
    fragments: list[Fragment]
    strategy: str
    elapsed: float
    stopped: str | None  # None: finished; "max-time", "interrupted", ...
    excluded: int = 0
    too_deep: int = 0
    over_limit: int = 0
    requests: int = 0
    extra: dict = field(default_factory=dict)  # more summary fields (e.g. a fetcher's)
    #: ``(url, reason)`` of each start URL whose host could not be reached (after
    #: its redirects): no name, no connection, no TLS, or no answer in time.
    unreachable: list[tuple[str, str]] = field(default_factory=list)
    #: How many start URLs the crawl was given.
    seeds: int = 0

    @property
    def site_down(self) -> bool:
        """Whether no start URL got an HTTP answer: the site could not be reached."""
        return bool(self.unreachable) and len(self.unreachable) >= self.seeds

    @property
    def pages(self) -> list[Link]:
        """The in-scope URLs that were requested."""
        return [lk for lk in self.links if lk.kind == "page" and lk.requested]

    def page_urls(self) -> set[str]:
        """The URLs of ``pages``."""
        return {lk.url for lk in self.pages}

    @property
    def bytes(self) -> int:
        """Bytes read over all responses."""
        return sum(lk.size for lk in self.links)

    @property
    def redirects(self) -> int:
        """Links that redirected (as pages, or followed by a check)."""
        return sum(
            1 for lk in self.links if lk.redirect or (lk.final_url and lk.final_url != lk.url)
        )

    def summary(self) -> dict:
        """The figures of the one-line JSON summary."""
        pages = len(self.pages)
        return {
            "event": "crawled",
            "strategy": self.strategy,
            "pages": pages,
            "checked": sum(1 for lk in self.links if lk.kind == "external" and lk.requested),
            "requests": self.requests,
            "bytes": self.bytes,
            "broken": len(self.broken),
            "redirects": self.redirects,
            "robots_skipped": sum(1 for lk in self.links if lk.skipped == "robots"),
            "scheme_skipped": sum(1 for lk in self.links if lk.skipped == "scheme"),
            "excluded": self.excluded,
            "too_deep": self.too_deep,
            "over_limit": self.over_limit,
            "truncated": sum(1 for lk in self.links if lk.truncated),
            "elapsed": round(self.elapsed, 3),
            "pages_per_s": round(pages / self.elapsed, 1) if self.elapsed > 0 else 0.0,
            "stopped": self.stopped,
            **self.extra,
        }

