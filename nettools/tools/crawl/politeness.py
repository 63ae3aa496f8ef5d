"""Being a good guest: per-host concurrency, spacing between requests, and
retries that back off (honouring ``Retry-After``).

The global bound (``--concurrency``) is the crawl's GreenPool or worker
count; ``HostGates`` adds, per host, at most ``per_host`` requests at once
and at least ``delay`` seconds between the starts of two requests (the larger
of ``--delay`` and the host's robots.txt ``Crawl-delay``).  A 429 or 503
pushes the host's next start back by its ``Retry-After``, so every request to
that host waits, not only the one that was refused.

A host gets one request at a time until it has answered once (``opened``):
a host that is down is found out by one request, not ``per_host``, and once
its failure is settled (``settle``: it refuses connections, its name does not
resolve, ...) every link to it waiting for a slot fails the same way without
a request of its own.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

from ...kernel.greenthread import sleep
from ...kernel.sync import Semaphore

__all__ = ["Gate", "HostGates", "RetryPolicy", "retry_after"]

#: The longest Retry-After honoured; a server asking for more gets a failed link.
MAX_RETRY_AFTER = 60.0


class Gate:
    """One host's slots and spacing; ``with gate:`` holds a slot (see ``HostGates.slot``).

    ``failure`` is the host's settled ``(kind, message)``: requests to it are
    pointless.  ``opened`` says whether it has answered once (all its slots are
    open)."""

    __slots__ = ("slots", "next_start", "delay", "closed", "failure")

    def __init__(self, per_host: int, delay: float) -> None:
        self.slots = Semaphore(1)
        self.closed = per_host - 1  # slots held back until the host answers
        self.next_start = 0.0
        self.delay = delay
        self.failure: tuple[str, str] | None = None

    @property
    def opened(self) -> bool:
        """Whether the host has answered once."""
        return self.closed == 0

    def answered(self) -> None:
        """The host answered: open all its slots."""
        if self.closed:
            self.slots.adjust(self.closed)
            self.closed = 0

    def __enter__(self) -> None:
        self.slots.acquire()
        if self.failure is not None:
            return  # no request will be made: no spacing to keep
        if not (self.next_start or self.delay):
            return  # no spacing, never held off: the common case, kept cheap
        try:
            self.wait_turn()
        except BaseException:
            self.slots.release()
            raise

    def wait_turn(self, at_least: float = 0.0) -> None:
        """Wait (holding a slot) for ``at_least`` seconds and until the host's
        spacing lets the next request start, and count that start."""
        deadline = time.monotonic() + at_least
        while True:  # hold_off may move next_start while we sleep
            wait = max(self.next_start, deadline) - time.monotonic()
            if wait <= 0:
                break
            sleep(wait)
        if self.delay:
            self.next_start = time.monotonic() + self.delay

    def __exit__(self, *exc: Any) -> None:
        self.slots.release()


class HostGates:
    """Per-host concurrency and spacing."""

    def __init__(self, per_host: int = 8, delay: float = 0.0) -> None:
        if per_host < 1:
            raise ValueError("per-host concurrency must be at least 1")
        self.per_host = per_host
        self.delay = delay
        self._gates: dict[str, Gate] = {}

    def _gate(self, host: str) -> Gate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = Gate(self.per_host, self.delay)
        return gate

    def set_delay(self, host: str, delay: float | None) -> None:
        """Space requests to ``host`` at least ``delay`` apart (never below --delay)."""
        gate = self._gate(host)
        gate.delay = max(self.delay, delay or 0.0)

    def hold_off(self, host: str, seconds: float) -> None:
        """No request to ``host`` starts for ``seconds`` (a 429/503's Retry-After)."""
        gate = self._gate(host)
        gate.next_start = max(gate.next_start, time.monotonic() + seconds)

    def slot(self, host: str) -> Gate:
        """``with gates.slot(host):`` holds one of ``host``'s request slots,
        entered no sooner than its spacing allows.  (A plain context manager,
        not a generator: it is entered for every request.)"""
        return self._gate(host)

    def settle(self, host: str, kind: str, message: str) -> None:
        """``host`` cannot be reached (``kind``: a ``FetchError`` kind): the
        links to it that are still to come fail with this, without a request."""
        gate = self._gate(host)
        if gate.failure is None:
            gate.failure = (kind, message)
            gate.answered()  # let the waiting links through, to fail at once


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass
class RetryPolicy:
    """``retries`` more attempts after a transient failure, waiting
    ``base * 2**attempt`` seconds (or the server's Retry-After)."""

    retries: int = 2
    base: float = 0.5

    def backoff(self, attempt: int, server_wait: float | None = None) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or None to give up."""
        if attempt >= self.retries:
            return None
        if server_wait is not None:
            return server_wait if server_wait <= MAX_RETRY_AFTER else None
        return self.base * 2**attempt
