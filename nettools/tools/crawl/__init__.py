"""``nettools crawl``: a polite recursive crawler and link checker.

    from nettools.tools.crawl import Crawler

    result = Crawler(["http://127.0.0.1:8000/"], check_links=True).run()
    print(result.summary(), [b.url for b in result.broken])

Modules: ``urls`` (normalisation), ``links`` (HTML links and anchors),
``scope``, ``robots`` (robots.txt and sitemaps), ``politeness`` (per-host
limits, spacing, retries), ``engine`` (the Crawler and its two strategies),
``fetcher`` (the fetch-and-parse step the engine calls), ``distributed`` (the
same crawl with its requests done by worker processes over ZeroMQ),
``report`` (text, json, jsonl, csv and junit output).
"""

from .engine import STRATEGIES, Broken, Crawler, CrawlResult, Link
from .scope import SCOPES

__all__ = ["Crawler", "CrawlResult", "Link", "Broken", "STRATEGIES", "SCOPES"]
