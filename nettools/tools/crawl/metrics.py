"""What a crawl leaves in ``--metrics-file``: its requests (from the links it
recorded), pages, links checked, broken links, redirects, fragments."""

from __future__ import annotations

from typing import Any

from ...web.client import FETCH_ERROR_KINDS
from ..plumbing.runmetrics import RunMetrics
from .results import CrawlResult

__all__ = ["crawl_run_metrics"]


def _kind(error: str) -> str:
    """The kind of a link's error (its message starts with it: ``connect: ...``)."""
    head = error.split(":", 1)[0].strip()
    return head if head in FETCH_ERROR_KINDS else "other"


def crawl_run_metrics(result: CrawlResult) -> RunMetrics:
    """A ``RunMetrics`` of a finished crawl."""
    run = RunMetrics("crawl")
    for link in result.links:
        if link.requested:
            run.request(link.status, link.elapsed, link.size,
                        None if link.error is None else _kind(link.error))  # fmt: skip
    summary = result.summary()

    def add_to(f: Any) -> None:
        f.counter("nettools_crawl_requests_total", "Requests made, retries and robots.txt "
                  "included.", result.requests)  # fmt: skip
        f.gauge("nettools_crawl_pages", "Pages of the site crawled.", summary["pages"])
        f.gauge("nettools_crawl_checked_links", "Links leaving the site that were checked.",
                summary["checked"])
        f.gauge("nettools_crawl_broken_links", "Broken links found.", summary["broken"])
        f.gauge("nettools_crawl_redirects", "Links that redirected.", summary["redirects"])
        f.gauge("nettools_crawl_broken_fragments", "Broken #fragments found.",
                len(result.fragments))
        f.gauge("nettools_crawl_interrupted", "1 if the crawl was stopped before its end.",
                int(result.stopped is not None))

    run.stats.metric_sources.append(add_to)
    return run
