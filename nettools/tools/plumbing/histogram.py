"""A histogram cheap enough for a hot path: a bisect and two additions per
observation, no lock (one hub per thread), nothing else until it is read.

The metrics endpoint turns it into a Prometheus histogram family when scraped
(``nettools.tools.plumbing.metrics``); code that observes never imports
``prometheus_client``.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["Histogram", "DURATION_BUCKETS", "LAG_BUCKETS"]

#: Request durations, in seconds (Prometheus' default buckets).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
                    7.5, 10.0)  # fmt: skip
#: How late the hub runs a timer, in seconds: well under a millisecond when all
#: is well, seconds when something blocks the thread.
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
               5.0, 10.0)  # fmt: skip


class Histogram:
    """Counts of observations per bucket (upper bounds, ascending; a last
    ``+Inf`` bucket is implied) and their sum."""

    __slots__ = ("bounds", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = DURATION_BUCKETS) -> None:
        if list(bounds) != sorted(set(bounds)):
            raise ValueError("histogram bounds must be distinct and ascending")
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0

    def observe(self, value: float) -> None:
        """Count one observation (it falls in the first bucket whose bound is >= it)."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value

    @property
    def count(self) -> int:
        """Observations so far."""
        return sum(self.counts)

    def merged(self, other: Histogram) -> Histogram:
        """A new histogram holding both ``self``'s and ``other``'s observations."""
        if other.bounds != self.bounds:
            raise ValueError("cannot merge histograms with different buckets")
        both = Histogram(self.bounds)
        both.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        both.sum = self.sum + other.sum
        return both

    def cumulative(self) -> list[tuple[str, int]]:
        """``(le, observations <= le)`` per bucket, ``+Inf`` last: Prometheus' form."""
        out, total = [], 0
        for bound, n in zip((*self.bounds, float("inf")), self.counts, strict=True):
            total += n
            out.append(("+Inf" if bound == float("inf") else repr(float(bound)), total))
        return out
