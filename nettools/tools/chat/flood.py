"""Flood control, the same for every chat: a token bucket per client.

Each client may send ``rate`` messages a second on average, in bursts of up
to ``burst``.  A message beyond that is refused (the client is told, and can
try again after ``retry_after`` seconds).  Refusals fill a second bucket, of
``max(20, 2 * burst)`` strikes refilled at the same rate: a client that keeps
sending while refused empties it, and is disconnected as flooding.

So one client can never put more than ``burst`` plus ``rate`` a second of
messages into the others' queues, and a flooder is gone within a few dozen
refusals -- it cannot fill honest readers' queues for long.
"""

from __future__ import annotations

import enum
import time

__all__ = ["TokenBucket", "FloodGuard", "Verdict", "check_rate"]


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; ``take()`` spends one."""

    __slots__ = ("rate", "capacity", "tokens", "stamp")

    def __init__(self, rate: float, capacity: float) -> None:
        self.rate = rate
        self.capacity = capacity
        self.tokens = capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def wait_time(self) -> float:
        """Seconds until the next token."""
        return max(0.0, (1 - self.tokens) / self.rate) if self.rate > 0 else float("inf")


class Verdict(enum.Enum):
    """What to do with a client's message."""

    OK = "ok"  # handle it
    LIMITED = "limited"  # refuse it, and say so
    FLOODING = "flooding"  # disconnect the client


def check_rate(rate: float, burst: int) -> None:
    """``ValueError`` unless ``rate`` and ``burst`` make a usable limit."""
    if not rate > 0:
        raise ValueError("rate must be above 0")
    if burst < 1:
        raise ValueError("burst must be at least 1")


class FloodGuard:
    """One client's flood control (see the module doc)."""

    __slots__ = ("bucket", "strikes")

    def __init__(self, rate: float, burst: int) -> None:
        self.bucket = TokenBucket(rate, burst)
        # Refused messages fill this one: a client that empties it is flooding.
        self.strikes = TokenBucket(rate, max(20, 2 * burst))

    def check(self) -> Verdict:
        """The verdict on one more message of this client."""
        if self.bucket.take():
            return Verdict.OK
        return Verdict.LIMITED if self.strikes.take() else Verdict.FLOODING

    def retry_after(self) -> float:
        """Seconds until a message would be taken again."""
        return self.bucket.wait_time()
