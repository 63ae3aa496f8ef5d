"""``nettools crawl``: a polite recursive crawler and link checker.

    from nettools.tools.crawl import Crawler

    result = Crawler(["http://127.0.0.1:8000/"], check_links=True).run()
    print(result.summary(), [b.url for b in result.broken])

Modules: ``engine`` (the Crawler: what to request for each link and what to
make of the answer), ``admission`` (which URLs are visited: once each, scope,
depth, page limit), ``requester`` (politeness and retries of each request),
``strategies`` (recursive, producer-consumer), ``judging`` (what is broken),
``results`` (Link, Broken, Fragment, CrawlResult), ``progress`` (how far a
running crawl has got), ``urls`` (normalisation), ``links`` (HTML links and
anchors), ``css`` (links in stylesheets and style attributes), ``scope``,
``robots`` (robots.txt and sitemaps), ``politeness`` (per-host limits,
spacing, retry policy), ``fetcher`` (the fetch-and-parse step), ``state``
(a crawl that outlives its process: journaled to SQLite, or shared by any
number of processes through Redis), ``distributed`` (the same crawl with its
requests done by worker processes over ZeroMQ), ``report`` (text, json,
jsonl, csv and junit output).
"""

from .engine import Crawler
from .progress import Progress
from .results import Broken, CrawlResult, Fragment, Link
from .scope import SCOPES
from .strategies import STRATEGIES

__all__ = [
    "Crawler",
    "CrawlResult",
    "Link",
    "Broken",
    "Fragment",
    "Progress",
    "STRATEGIES",
    "SCOPES",
]
