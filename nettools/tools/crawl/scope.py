"""Which URLs a crawl follows.

* ``host`` (default): the seeds' hosts (a host is its name plus a non-default
  port, so http and https of one site are the same host).
* ``domain``: the seeds' hosts and their subdomains (``www.`` is ignored, so
  ``www.example.org`` also covers ``docs.example.org``).
* ``prefix``: URLs under a seed's directory (``http://h/docs/`` for
  ``http://h/docs/index.html``), on the seed's scheme and host.
* ``any``: everything (bound it with --depth / --max-pages).

``include`` regexes (any must match) narrow what is followed; URLs outside
are checked as links that leave the site.  ``exclude`` regexes (none may
match) name URLs that are never requested at all.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from yarl import URL

from .urls import HTTP_PREFIXES, host_key

__all__ = ["Scope", "SCOPES", "PAGE", "EXTERNAL", "SCHEME", "EXCLUDED", "KINDS"]

SCOPES = ("host", "domain", "prefix", "any")

#: What becomes of a link (``Scope.kind_of``), one letter each: the shared
#: state stores them so.
PAGE, EXTERNAL, SCHEME, EXCLUDED = "p", "e", "s", "x"
#: The ``Link.kind`` of each.
KINDS = {PAGE: "page", EXTERNAL: "external", SCHEME: "external"}


class Scope:
    """Decides for a normalised URL: follow it, only check it, or leave it alone."""

    def __init__(
        self,
        seeds: Iterable[URL],
        mode: str = "host",
        include: Iterable[str] = (),
        exclude: Iterable[str] = (),
    ) -> None:
        if mode not in SCOPES:
            raise ValueError(f"unknown scope {mode!r} (use one of: {', '.join(SCOPES)})")
        self.mode = mode
        seeds = list(seeds)
        self.include = [_compile(p, "--include") for p in include]
        self.exclude = [_compile(p, "--exclude") for p in exclude]
        self._hosts = {host_key(u) for u in seeds}
        self._domains = {_domain(u.host or "") for u in seeds}
        self._prefixes = {str(u.with_query(None))[: str(u.with_query(None)).rfind("/") + 1]
                          for u in seeds}

    def excluded(self, url: URL) -> bool:
        """True for URLs that must never be requested (--exclude)."""
        if not self.exclude:
            return False
        text = str(url)
        return any(p.search(text) for p in self.exclude)

    def follows(self, url: URL) -> bool:
        """True for URLs the crawl fetches and parses."""
        if self.mode == "host":
            inside = host_key(url) in self._hosts
        elif self.mode == "domain":
            host = url.host or ""
            inside = any(host == d or host.endswith("." + d) for d in self._domains)
        elif self.mode == "prefix":
            text = str(url)
            inside = any(text.startswith(p) for p in self._prefixes)
        else:
            inside = True
        if inside and self.include:
            text = str(url)
            inside = any(p.search(text) for p in self.include)
        return inside


    def kind_of(self, key: str, url: URL, check_links: bool, *, seed: bool = False) -> str | None:
        """What becomes of a link to ``url`` (``key``: its string form):
        ``EXCLUDED``, ``PAGE`` (crawled), ``EXTERNAL`` (checked), ``SCHEME`` (a
        scheme not fetched: named only), or None (left alone: out of scope and
        not checked).  A ``seed`` (a start URL the user named) is a page even
        where --include would leave it out: include narrows what is followed."""
        if self.exclude and self.excluded(url):
            return EXCLUDED
        if not key.startswith(HTTP_PREFIXES):
            return SCHEME if check_links else None
        if seed or self.follows(url):
            return PAGE
        return EXTERNAL if check_links else None


def _domain(host: str) -> str:
    return host[4:] if host.startswith("www.") else host


def _compile(pattern: str, flag: str) -> re.Pattern:
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"{flag} {pattern!r}: {exc}") from None
