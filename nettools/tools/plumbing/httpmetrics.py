"""Request counts and durations of an HTTP service, for ``--metrics``.

``RequestMetrics(stats).hook`` is a WSGI server's ``on_request`` hook (see
``nettools.web.wsgi.WSGIOptions``): per response, a clock read, a bisect and a
few additions; the families are made only when scraped.  It also adds the
bodies' sizes to the service's ``Stats`` bytes (an HTTP service's bytes in and
out are its request and response bodies).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from time import monotonic
from typing import Any

from .histogram import DURATION_BUCKETS, Histogram
from .service import Stats

__all__ = ["RequestMetrics"]

_CLASSES = {str(n): f"{n}xx" for n in range(1, 6)}


class RequestMetrics:
    """Requests by status class (``1xx``..``5xx``, ``none`` when nothing was
    answered) and a histogram of their durations, in seconds.  ``count_bytes``:
    add the bodies' sizes to ``stats`` (False for a server that counts its
    bytes itself)."""

    def __init__(self, stats: Stats, count_bytes: bool = True) -> None:
        self.stats = stats
        self.count_bytes = count_bytes
        #: The status' first character -> requests ("" when nothing was answered).
        self.by_digit: dict[str, int] = dict.fromkeys(("", "1", "2", "3", "4", "5"), 0)
        self.duration = Histogram(DURATION_BUCKETS)
        #: The hook to give the server (``on_request=metrics.hook``).
        self.hook = self._make_hook()
        stats.metric_sources.append(self.add_to)

    def __call__(
        self, environ: dict, status: str | None, received: int, sent: int, started: float
    ) -> None:
        self.hook(environ, status, received, sent, started)

    def _make_hook(self) -> Callable[[dict, str | None, int, int, float], None]:
        # It runs after every response: a closure over its counters (no
        # attribute look-ups, no bound-method call), the histogram's observe
        # inlined, the status class named only when scraped (see make bench).
        duration, counts, bounds = self.duration, self.duration.counts, self.duration.bounds
        by_digit, stats, count_bytes = self.by_digit, self.stats, self.count_bytes

        def hook(environ: dict, status: str | None, received: int, sent: int,
                 started: float) -> None:
            elapsed = monotonic() - started
            counts[bisect_left(bounds, elapsed)] += 1
            duration.sum += elapsed
            digit = status[:1] if status else ""
            try:
                by_digit[digit] += 1
            except KeyError:
                by_digit[digit] = 1
            if count_bytes:
                stats.bytes_in += received
                stats.bytes_out += sent

        return hook

    @property
    def by_class(self) -> dict[str, int]:
        """Requests by status class."""
        out: dict[str, int] = {}
        for digit, n in self.by_digit.items():
            if not n:
                continue  # the classes seen so far, as before any was counted
            cls = _CLASSES.get(digit, "none")
            out[cls] = out.get(cls, 0) + n
        return out

    def add_to(self, f: Any) -> None:
        """The families (``f`` is a ``plumbing.metrics.Families``)."""
        f.counts("nettools_http_requests_total", "HTTP requests answered, by status class.",
                 "status_class", self.by_class)
        f.histogram("nettools_http_request_duration_seconds",
                    "Time from a request's head to the end of its response.", self.duration)
