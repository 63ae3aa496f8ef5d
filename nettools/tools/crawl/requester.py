"""How a crawl makes a request: politely, with retries, the outcome written down.

Every request waits for its host's slot (``HostGates``: per-host limit,
spacing, Crawl-delay, Retry-After).  A 429 or 503 is retried after its
Retry-After (the whole host holds off meanwhile), a transient transport
failure after a backoff, as ``RetryPolicy`` allows and not once the crawl is
stopping; dns, tls and refused addresses are not retried.
"""

from __future__ import annotations

import logging

from yarl import URL

from ...kernel.greenthread import sleep
from ...web.client import FetchError
from ..fetch import Halt
from .fetcher import Fetched, Fetcher
from .politeness import HostGates, RetryPolicy, retry_after
from .results import Link
from .urls import host_key

__all__ = ["Requester", "TRANSIENT", "RETRY_STATUSES"]

log = logging.getLogger("nettools.crawl")

#: Transport failures worth another try; dns, tls and refused addresses are not.
TRANSIENT = frozenset({"timeout", "connect", "protocol", "other"})
RETRY_STATUSES = frozenset({429, 503})


class Requester:
    """The requests of one crawl, through ``fetcher``; ``requests`` counts them
    (retries included).  ``halt`` says when the crawl is stopping."""

    def __init__(self, fetcher: Fetcher, gates: HostGates, retry: RetryPolicy, halt: Halt) -> None:
        self.fetcher = fetcher
        self.gates = gates
        self.retry = retry
        self.halt = halt
        self.requests = 0

    def fetch(
        self, link: Link, method: str, *, follow_redirects: bool, max_body: int | None = None,
        quiet: bool = False, links: bool = False, anchors: bool = False,
    ) -> Fetched | None:
        """``method`` on ``link`` with politeness and retries; the outcome is
        recorded on ``link``.  None when no response came (``link.error`` says
        why).  ``quiet``: a failed transport is not retried (a HEAD that a GET
        will follow)."""
        url = link.parsed_url
        host = host_key(url)
        attempt = 0
        while True:
            error: FetchError | None = None
            resp: Fetched | None = None
            with self.gates.slot(host):
                link.attempts += 1
                self.requests += 1
                try:
                    resp = self.fetcher.fetch(
                        method, url, follow_redirects=follow_redirects, max_body=max_body,
                        links=links, anchors=anchors,
                    )  # fmt: skip
                except FetchError as exc:
                    error = exc
            if resp is not None and resp.status in RETRY_STATUSES:
                wait = self.retry.backoff(attempt, retry_after(resp.headers.get("Retry-After")))
                if wait is not None and not self.halt.stopped:
                    self.gates.hold_off(host, wait)
                    attempt += 1
                    continue
            if error is not None and error.kind in TRANSIENT and not quiet:
                wait = self.retry.backoff(attempt)
                if wait is not None and not self.halt.stopped:
                    sleep(wait)
                    attempt += 1
                    continue
            link.method = method
            if error is not None:
                link.error = f"{error.kind}: {error.message}"
                return None
            assert resp is not None
            link.status = resp.status
            link.error = None
            link.content_type = resp.content_type
            link.size = resp.size
            link.truncated = resp.truncated
            link.final_url = resp.final_url
            link.elapsed = resp.elapsed
            return resp

    def fetch_plain(self, url: URL) -> tuple[int, bytes] | None:
        """One GET (robots.txt, sitemaps), politely: ``(status, body)``, or None
        on a transport failure."""
        with self.gates.slot(host_key(url)):
            self.requests += 1
            try:
                resp = self.fetcher.fetch("GET", url, follow_redirects=True, body=True)
            except FetchError as exc:
                log.info("%s", exc)
                return None
        return resp.status, resp.body or b""
