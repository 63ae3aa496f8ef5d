"""robots.txt (parsed by protego) and sitemaps.

Each origin's robots.txt is fetched once, before the first page of that
origin; greenthreads that need it meanwhile wait for that one fetch.  A
missing robots.txt (4xx) allows everything; so does one that cannot be
fetched (5xx, network error), which is logged -- a link checker that stops
at a flaky robots.txt checks nothing.
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field

from protego import Protego
from yarl import URL

from ...kernel.sync import Event
from ...web.client import FetchError
from .requester import HOST_FAILURES
from .urls import origin

__all__ = ["Robots", "RobotsCache", "parse_sitemap"]

log = logging.getLogger("nettools.crawl")

#: ``fetch(url) -> (status, body)``, or why no answer came.
Fetch = Callable[[URL], "tuple[int, bytes] | FetchError"]


@dataclass
class Robots:
    """The rules of one origin (no rules: everything allowed)."""

    rules: Protego | None = None
    sitemaps: list[str] = field(default_factory=list)

    def allowed(self, url: URL, user_agent: str) -> bool:
        return self.rules is None or self.rules.can_fetch(str(url), user_agent)

    def crawl_delay(self, user_agent: str) -> float | None:
        if self.rules is None:
            return None
        delay = self.rules.crawl_delay(user_agent)
        return float(delay) if delay else None


class RobotsCache:
    """robots.txt per origin, each fetched once through ``fetch``."""

    def __init__(self, fetch: Fetch, user_agent: str) -> None:
        self.fetch = fetch
        self.user_agent = user_agent
        self._cache: dict[str, Robots] = {}
        self._loading: dict[str, Event] = {}

    def get(self, url: URL) -> Robots:
        key = origin(url)
        robots = self._cache.get(key)
        if robots is not None:
            return robots
        pending = self._loading.get(key)
        if pending is not None:
            pending.wait()
            return self._cache[key]
        done = self._loading[key] = Event()
        try:
            robots = self._load(URL(key))
        finally:
            self._cache[key] = robots if robots is not None else Robots()
            del self._loading[key]
            done.send(None)
        return self._cache[key]

    def _load(self, site: URL) -> Robots:
        answer = self.fetch(site / "robots.txt")
        if isinstance(answer, FetchError):
            if answer.kind not in HOST_FAILURES:  # else the pages will say why
                log.warning("%s/robots.txt could not be fetched (%s): crawling as if it "
                            "allowed all", site, answer.kind)  # fmt: skip
            return Robots()
        status, body = answer
        if status >= 500:
            log.warning("%s/robots.txt answered %d: crawling as if it allowed all", site, status)
        if status >= 300:
            return Robots()
        text = body.decode("utf-8", "replace")
        rules = Protego.parse(text)
        return Robots(rules, list(rules.sitemaps))

    def allowed(self, url: URL) -> bool:
        return self.get(url).allowed(url, self.user_agent)

    def crawl_delay(self, url: URL) -> float | None:
        return self.get(url).crawl_delay(self.user_agent)


def parse_sitemap(body: bytes) -> tuple[list[str], list[str]]:
    """``(page URLs, nested sitemap URLs)`` of a sitemap or sitemap index;
    ``([], [])`` for a body that is not sitemap XML."""
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return [], []
    locs = [el.text.strip() for el in root.iter() if el.tag.rsplit("}", 1)[-1] == "loc" and el.text]
    if root.tag.rsplit("}", 1)[-1] == "sitemapindex":
        return [], locs
    return locs, []
