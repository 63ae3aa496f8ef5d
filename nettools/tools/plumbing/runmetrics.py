"""The metrics a client run leaves behind: ``--metrics-file`` of ``nettools crawl``
and ``nettools fetch``, in the text format node-exporter's textfile collector
reads, written once the run is over.

``RunMetrics`` keeps the run's requests by status class (``error`` for a
transport failure), a histogram of their durations, the bytes received and
errors by kind (in a ``Stats``, as every service's), and then how long the run
took, when it ended and its exit code.  A tool adds its own families through
``stats.metric_sources``.
"""

from __future__ import annotations

import time
from typing import Any

from .histogram import DURATION_BUCKETS, Histogram
from .service import Stats

__all__ = ["RunMetrics"]


class RunMetrics:
    """What one run of ``service`` (``crawl``, ``fetch``) reports."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.stats = Stats()
        self.by_class: dict[str, int] = {}
        self.duration = Histogram(DURATION_BUCKETS)
        self.started = time.time()
        self.exit_code: int | None = None
        self.stats.metric_sources.append(self.add_to)

    def request(self, status: int | None, seconds: float, size: int,
                error_kind: str | None = None) -> None:  # fmt: skip
        """Count one request: its status (None: it failed, with ``error_kind``),
        how long it took and the bytes it brought."""
        cls = f"{status // 100}xx" if status is not None else "error"
        self.by_class[cls] = self.by_class.get(cls, 0) + 1
        self.duration.observe(seconds)
        self.stats.bytes_in += size
        if status is None:
            self.stats.error(error_kind or "other")

    def add_to(self, f: Any) -> None:
        """The run's families (``f`` is a ``plumbing.metrics.Families``)."""
        f.counts("nettools_http_client_requests_total",
                 "HTTP requests made, by status class (error: no answer).", "status_class",
                 self.by_class)  # fmt: skip
        f.histogram("nettools_http_client_request_duration_seconds",
                    "Time each request took, redirects and body included.", self.duration)
        f.gauge("nettools_run_start_time_seconds", "When the run started (Unix time).",
                self.started)
        f.gauge("nettools_run_duration_seconds", "How long the run took.",
                time.time() - self.started)
        if self.exit_code is not None:
            f.gauge("nettools_run_exit_code", "The run's exit status (0: success).",
                    self.exit_code)

    def write(self, path: str, exit_code: int) -> None:
        """Write the families to ``path`` (atomically: a collector never reads half
        a file); ``OSError`` if it cannot be written."""
        from .metrics import ServiceCollector, write_metrics_file

        self.exit_code = exit_code
        write_metrics_file(path, ServiceCollector(self.service, self.stats, servers=list))
