"""Being a good guest: per-host concurrency, spacing between requests, and
retries that back off (honouring ``Retry-After``).

The global bound (``--concurrency``) is the crawl's GreenPool or worker
count; ``HostGates`` adds, per host, at most ``per_host`` requests at once
and at least ``delay`` seconds between the starts of two requests (the larger
of ``--delay`` and the host's robots.txt ``Crawl-delay``).  A 429 or 503
pushes the host's next start back by its ``Retry-After``, so every request to
that host waits, not only the one that was refused.
"""

from __future__ import annotations

import email.utils
import time
from dataclasses import dataclass
from typing import Any

from ...kernel.greenthread import sleep
from ...kernel.sync import Semaphore

__all__ = ["HostGates", "RetryPolicy", "retry_after"]

#: The longest Retry-After honoured; a server asking for more gets a failed link.
MAX_RETRY_AFTER = 60.0


class _Gate:
    """One host's slots and spacing; ``with gate:`` holds a slot (see ``HostGates.slot``)."""

    __slots__ = ("slots", "next_start", "delay")

    def __init__(self, per_host: int, delay: float) -> None:
        self.slots = Semaphore(per_host)
        self.next_start = 0.0
        self.delay = delay

    def __enter__(self) -> None:
        self.slots.acquire()
        try:
            while True:  # hold_off may move next_start while we sleep
                wait = self.next_start - time.monotonic()
                if wait <= 0:
                    break
                sleep(wait)
        except BaseException:
            self.slots.release()
            raise
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
        self._gates: dict[str, _Gate] = {}

    def _gate(self, host: str) -> _Gate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = _Gate(self.per_host, self.delay)
        return gate

    def set_delay(self, host: str, delay: float | None) -> None:
        """Space requests to ``host`` at least ``delay`` apart (never below --delay)."""
        gate = self._gate(host)
        gate.delay = max(self.delay, delay or 0.0)

    def hold_off(self, host: str, seconds: float) -> None:
        """No request to ``host`` starts for ``seconds`` (a 429/503's Retry-After)."""
        gate = self._gate(host)
        gate.next_start = max(gate.next_start, time.monotonic() + seconds)

    def slot(self, host: str) -> _Gate:
        """``with gates.slot(host):`` holds one of ``host``'s request slots,
        entered no sooner than its spacing allows.  (A plain context manager,
        not a generator: it is entered for every request.)"""
        return self._gate(host)


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
