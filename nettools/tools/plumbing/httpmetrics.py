"""Request counts and durations of an HTTP service, for ``--metrics``.

``RequestMetrics`` is a WSGI server's ``on_request`` hook (see
``nettools.web.wsgi.WSGIOptions``): per response, a clock read, a bisect and a
few additions; the families are made only when scraped.  It also adds the
bodies' sizes to the service's ``Stats`` bytes (an HTTP service's bytes in and
out are its request and response bodies).
"""

from __future__ import annotations

from bisect import bisect_left
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
        self.by_digit: dict[str, int] = {}  # the status' first character -> requests
        self.duration = Histogram(DURATION_BUCKETS)
        stats.metric_sources.append(self.add_to)

    def __call__(
        self, environ: dict, status: str | None, received: int, sent: int, started: float
    ) -> None:
        # Called after every response: Histogram.observe and the class's name
        # are inlined or left to the scrape (a per-request cost, see make bench).
        elapsed = monotonic() - started
        duration = self.duration
        duration.counts[bisect_left(duration.bounds, elapsed)] += 1
        duration.sum += elapsed
        digit = status[:1] if status else ""
        by_digit = self.by_digit
        by_digit[digit] = by_digit.get(digit, 0) + 1
        if self.count_bytes:
            stats = self.stats
            stats.bytes_in += received
            stats.bytes_out += sent

    @property
    def by_class(self) -> dict[str, int]:
        """Requests by status class."""
        out: dict[str, int] = {}
        for digit, n in self.by_digit.items():
            cls = _CLASSES.get(digit, "none")
            out[cls] = out.get(cls, 0) + n
        return out

    def add_to(self, f: Any) -> None:
        """The families (``f`` is a ``plumbing.metrics.Families``)."""
        f.counts("nettools_http_requests_total", "HTTP requests answered, by status class.",
                 "status_class", self.by_class)
        f.histogram("nettools_http_request_duration_seconds",
                    "Time from a request's head to the end of its response.", self.duration)
