"""How a crawl makes a request: politely, with retries, the outcome written down.

Every request waits for its host's slot (``HostGates``: per-host limit,
spacing, Crawl-delay, Retry-After).  Only what can succeed on another try is
tried again, as ``RetryPolicy`` allows and not once the crawl is stopping: a
429 or 503 after its Retry-After (the whole host holds off meanwhile), a
timeout or a broken answer after a backoff.  A failure that concerns the
host rather than the link -- its name does not resolve, it refuses
connections, its TLS fails -- is not retried and settles the host: every
link to it still to come fails the same way at once, without a request
(``HOST_FAILURES``).  So does a timeout of a host that never answered, once
its retries are spent.
"""

from __future__ import annotations

import logging

from yarl import URL

from ...kernel.greenthread import sleep
from ...web.client import FetchError
from ..fetch import Halt
from .fetcher import Fetched, Fetcher
from .politeness import Gate, HostGates, RetryPolicy, retry_after
from .results import Link
from .urls import host_key

__all__ = ["Requester", "TRANSIENT", "RETRY_STATUSES", "HOST_FAILURES"]

log = logging.getLogger("nettools.crawl")

#: Transport failures worth another try.
TRANSIENT = frozenset({"timeout", "protocol"})
#: Transport failures of the host, whatever the link: they settle the host.
HOST_FAILURES = frozenset({"dns", "connect", "tls", "refused-address"})
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
        retry: frozenset[str] = TRANSIENT, links: bool = False, anchors: bool = False,
    ) -> Fetched | FetchError:
        """``method`` on ``link`` with politeness and retries; the outcome is
        recorded on ``link`` and returned: the response, or why none came.
        ``retry``: the transport failures to try again (a HEAD whose broken
        answer a GET will follow leaves out "protocol")."""
        url = link.parsed_url
        host = host_key(url)
        attempt = 0
        while True:
            gate = self.gates.slot(host)
            with gate:
                while True:
                    failure = gate.failure
                    if failure is not None:  # the host is settled: no request
                        outcome: Fetched | FetchError = FetchError(link.url, *failure)
                        break
                    link.attempts += 1
                    self.requests += 1
                    try:
                        outcome = self.fetcher.fetch(
                            method, url, follow_redirects=follow_redirects, max_body=max_body,
                            links=links, anchors=anchors,
                        )  # fmt: skip
                    except FetchError as exc:
                        outcome = exc
                    else:
                        if gate.closed:
                            gate.answered()
                        break
                    if gate.opened or outcome.kind not in retry:
                        break
                    # A host that never answered is tried by one link at a time,
                    # retries included: the links behind it wait for the verdict.
                    wait = self._backoff(attempt)
                    if wait is None:
                        break
                    gate.wait_turn(wait)
                    attempt += 1
            if isinstance(outcome, Fetched):
                if outcome.status in RETRY_STATUSES:
                    server_wait = retry_after(outcome.headers.get("Retry-After"))
                    wait = self._backoff(attempt, server_wait)
                    if wait is not None:
                        self.gates.hold_off(host, wait)
                        attempt += 1
                        continue
            elif failure is None:
                if outcome.kind in retry:
                    wait = self._backoff(attempt)
                    if wait is not None:
                        sleep(wait)
                        attempt += 1
                        continue
                self._settle(host, gate, outcome, spent=True)
            link.method = method
            if isinstance(outcome, FetchError):
                link.error = f"{outcome.kind}: {outcome.message}"
                return outcome
            link.status = outcome.status
            link.error = None
            link.content_type = outcome.content_type
            link.size = outcome.size
            link.truncated = outcome.truncated
            link.final_url = outcome.final_url
            link.elapsed = outcome.elapsed
            return outcome

    def _backoff(self, attempt: int, server_wait: float | None = None) -> float | None:
        """Seconds before attempt ``attempt + 1``, or None: spent, or the crawl is stopping."""
        if self.halt.stopped:
            return None
        return self.retry.backoff(attempt, server_wait)

    def _settle(self, host: str, gate: Gate, error: FetchError, *, spent: bool) -> None:
        """Settle the host ``error`` is about, if it is about the host: the one
        asked (``gate``), or a host a redirect led to (which means the first
        one answered).  ``spent``: the retries were spent (a timeout of a host
        that never answered then settles it too)."""
        failed = _host_of(error.url) or host
        if failed != host:
            gate.answered()
            gate = self.gates.slot(failed)
        if error.kind in HOST_FAILURES or (spent and error.kind == "timeout" and not gate.opened):
            if gate.failure is None:
                log.debug("%s unreachable, not asked again: %s: %s", failed, error.kind,
                          error.message)  # fmt: skip
            self.gates.settle(failed, error.kind, error.message)

    def fetch_plain(self, url: URL) -> tuple[int, bytes] | FetchError:
        """One GET (robots.txt, sitemaps), politely: ``(status, body)``, or the
        transport failure (which may settle the host, as above)."""
        host = host_key(url)
        gate = self.gates.slot(host)
        with gate:
            if gate.failure is not None:
                return FetchError(str(url), *gate.failure)
            self.requests += 1
            try:
                resp = self.fetcher.fetch("GET", url, follow_redirects=True, body=True)
            except FetchError as exc:
                error = exc
            else:
                gate.answered()
                return resp.status, resp.body or b""
        self._settle(host, gate, error, spent=False)
        return error


def _host_of(url: str) -> str | None:
    try:
        parsed = URL(url)
    except (ValueError, TypeError):
        return None
    return host_key(parsed) if parsed.host else None
