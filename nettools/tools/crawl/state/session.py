"""One crawl with its state where ``--state`` says: what ``nettools crawl`` and
``nettools crawl-worker`` run.

    session = CrawlSession.open(parse_state("sqlite:crawl.db"), urls, options)
    with session.stop_on_signals():
        result = session.run()

* no state: the crawl in this process's memory (``Crawler``);
* ``sqlite:FILE``: the same, journaled to FILE (``journal.py``);
* Redis: this process's part in the shared crawl (``shared.py``); ``start``
  makes the crawl's state (or checks that the one there is this crawl) and
  admits its start URLs; a worker only joins.

Without URLs the crawl the state holds goes on, with its own settings.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from ....kernel.greenthread import sleep
from ..engine import Crawler
from ..progress import PROGRESS_EVERY, Progress
from ..results import CrawlResult
from . import StateSpec
from .frontier import SharedFrontier, StateUnavailable
from .journal import Journal
from .shared import DEFAULT_LEASE, SharedCrawl

__all__ = ["CrawlSession", "IDENTITY_OPTIONS"]

log = logging.getLogger("nettools.crawl")

#: The options that make a crawl the crawl it is (``Crawler.identity``); the
#: others say how this process runs it.
IDENTITY_OPTIONS = ("scope", "include", "exclude", "depth", "max_pages", "check_links",
                    "check_fragments", "robots", "sitemap", "max_body", "user_agent")  # fmt: skip
#: Seconds between two looks for a crawl to join.
JOIN_POLL = 0.2


class CrawlSession:
    """A crawl and where its state lives; see the module's doc."""

    def __init__(self, crawler: Crawler, shared: SharedCrawl | None = None) -> None:
        self.crawler = crawler
        self.shared = shared

    @classmethod
    def open(
        cls, spec: StateSpec | None, urls: list[str], options: dict[str, Any], *,
        fresh: bool = False, read_only: bool = False, worker: str = "crawl",
        lease: float = DEFAULT_LEASE,
    ) -> CrawlSession:
        """The crawl of ``urls`` with ``options`` (``Crawler``'s), its state in
        ``spec``; with no ``urls``, the crawl ``spec`` holds.  ValueError for a
        state that holds another crawl, or none."""
        if spec is None:
            return cls(Crawler(urls, **options))
        if spec.kind == "sqlite":
            if not urls:
                crawler = Crawler.from_identity(Journal.stored_identity(spec.path),
                                                **_run_options(options))  # fmt: skip
            else:
                crawler = Crawler(urls, **options)
            crawler.journal = Journal(spec.path, crawler.identity, fresh=fresh,
                                      read_only=read_only)  # fmt: skip
            return cls(crawler)
        frontier = SharedFrontier.open(spec)
        if not urls:
            held = frontier.identity()
            if held is None:
                raise ValueError(f"no crawl in {spec.text} under {spec.prefix!r}")
            crawler = Crawler.from_identity(held[0], **_run_options(options))
        else:
            crawler = Crawler(urls, **options)
        session = cls(crawler, SharedCrawl(crawler, frontier, worker=worker, lease=lease))
        if read_only:
            frontier.expect(crawler.identity)
        else:
            session.shared.start(fresh=fresh)  # type: ignore[union-attr]
        return session

    @classmethod
    def join(
        cls, spec: StateSpec, *, worker: str, concurrency: int, patience: float,
    ) -> CrawlSession:
        """A worker's part in the shared crawl ``spec`` holds, with the settings
        its first process gave it; waits up to ``patience`` seconds for one, and
        for Redis when it is out of reach during the crawl."""
        frontier = SharedFrontier.open(spec)
        waited = 0.0
        while True:
            try:
                held = frontier.identity()
            except StateUnavailable:
                held = None
                if waited >= patience:
                    raise
            if held is not None:
                break
            if waited >= patience:
                raise RuntimeError(f"no crawl in {spec.text} under {spec.prefix!r} "
                                   f"after {patience:g}s")  # fmt: skip
            sleep(JOIN_POLL)
            waited += JOIN_POLL
        identity, settings = held
        lease = float(settings.pop("lease", DEFAULT_LEASE))
        crawler = Crawler.from_identity(identity, concurrency=concurrency, **settings)
        return cls(crawler, SharedCrawl(crawler, frontier, worker=worker, lease=lease,
                                        patience=patience))  # fmt: skip

    # ------------------------------------------------------------- running

    def run(self) -> CrawlResult:
        """Crawl (this process's part of it); the result as the state holds it."""
        if self.shared is None:
            return self.crawler.run()
        self.shared.run()
        return self.shared.result()

    def work(self) -> str:
        """A worker's part in the shared crawl: "done", "stopped" (for all: max-time)
        or "interrupted" (this process was stopped)."""
        assert self.shared is not None, "only a shared crawl has workers"
        return self.shared.run()

    def report(self) -> CrawlResult:
        """The result as the state holds it now, without a request."""
        if self.shared is not None:
            return self.shared.result()
        return self.crawler.report()

    def stop_on_signals(self) -> contextlib.AbstractContextManager[None]:
        owner = self.shared if self.shared is not None else self.crawler
        return owner.stop_on_signals()

    def reporting(
        self, show: Callable[[Progress], None], every: float = PROGRESS_EVERY
    ) -> contextlib.AbstractContextManager[None]:
        owner = self.shared if self.shared is not None else self.crawler
        return owner.reporting(show, every)

    @property
    def visited(self) -> int:
        """Links this process visited."""
        return self.shared.visited if self.shared is not None else self.crawler.done


def _run_options(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if k not in IDENTITY_OPTIONS}
