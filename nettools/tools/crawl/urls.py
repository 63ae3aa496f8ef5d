"""URL normalisation: one spelling per resource, so each is fetched once.

``normalize`` resolves a link against its page, keeps only http(s), drops the
fragment, lowercases scheme and host, removes the default port, normalises
percent-encoding (``%7e`` -> ``~``, ``%2f`` kept) and gives an empty path
``/``.  The string form of the result is the de-duplication key.

``Resolver`` is ``normalize`` with a memory: pages of one site repeat the
same links (menus, footers, "home", "up"), so each spelling is worked out
once per context it can depend on (see ``Resolver.resolve``).  It also hands
back the links to resources the crawl does not fetch (``mailto:``, ``file:``,
``ftp:``...: see ``other_scheme``), for the report to name them.
"""

from __future__ import annotations

import re
from urllib.parse import unquote, urlsplit, urlunsplit

from yarl import URL

__all__ = [
    "normalize", "other_scheme", "Resolver", "split_fragment", "host_key", "origin", "is_http",
    "HTTP_SCHEMES", "HTTP_PREFIXES", "NOT_LINKS",
]

HTTP_SCHEMES = frozenset({"http", "https"})
#: How every normalised http(s) URL (a de-duplication key) starts.
HTTP_PREFIXES = ("http://", "https://")
#: Schemes of links that name no resource to check: code, inline data.
NOT_LINKS = frozenset({"javascript", "data", "about", "blob"})
#: A link that names its scheme: URL() finds that scheme and never looks at a base.
_HAS_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:").match
#: A path URL() and normalisation leave as it is: segments of unreserved characters,
#: none of them empty or starting with a dot (so no "." or ".." to remove).
_PLAIN_PATH = re.compile(r"(?:/[A-Za-z0-9_~\-][A-Za-z0-9._~\-]*)+/?").fullmatch
#: Resolved links remembered per site before that memory starts over.
RESOLVER_SIZE = 200_000


def is_http(url: URL) -> bool:
    return url.scheme in HTTP_SCHEMES and bool(url.host)


def normalize(link: str, base: URL | None = None) -> tuple[URL, str] | None:
    """``(url without fragment, fragment)`` for ``link`` seen on ``base``;
    None for links that are not http(s) (mailto:, javascript:, data:, ...) or
    cannot be parsed."""
    link = link.strip()
    if not link:
        return None
    try:
        url = URL(link)
        if base is not None and not url.scheme:  # relative, or "//host/path"
            url = base.join(url)
        if not is_http(url):
            return None
        fragment = ""
        if url.raw_fragment:
            fragment = unquote(url.raw_fragment)
            url = url.with_fragment(None)
        if url.is_default_port() and url.explicit_port is not None:
            url = url.with_port(None)
        if url.raw_path == "/" and str(url).count("/") == 2:
            # yarl prints "http://h" (and "http://h?q") for "http://h/": one spelling.
            scheme, netloc, _, query, _ = urlsplit(str(url))
            url = URL(urlunsplit((scheme, netloc, "/", query, "")), encoded=True)
        # str(url) is already yarl's canonical percent-encoding: the key.
        return url, fragment
    except (ValueError, TypeError, UnicodeError):
        return None


def other_scheme(link: str) -> tuple[URL, str] | None:
    """``(url without fragment, fragment)`` for a link to a resource the crawl
    does not fetch (``mailto:``, ``file:``, ``ftp:``, ``tel:``...); None for
    http(s), for what names no resource (``NOT_LINKS``), and for what cannot be
    parsed."""
    link = link.strip()
    if not _HAS_SCHEME(link):
        return None
    try:
        url = URL(link)
    except (ValueError, TypeError, UnicodeError):
        return None
    if not url.scheme or url.scheme in HTTP_SCHEMES or url.scheme in NOT_LINKS:
        return None
    fragment = unquote(url.raw_fragment) if url.raw_fragment else ""
    return (url.with_fragment(None) if fragment else url), fragment


class Resolver:
    """``normalize`` for the links of many pages, remembering its answers.

    ``resolve(links, base)`` gives what ``normalize(link, base)`` gives for
    each link (with its string form, the de-duplication key), or for a link
    to another scheme what ``other_scheme`` gives, worked out once
    per context the answer can depend on, which is decided from the link's
    text exactly as ``URL()`` parses it:

    * ``http://h/x`` (any ``scheme:``): not joined with the base at all, so one
      answer for every page;
    * ``/x`` and ``//h/x``: joined with the base's scheme and authority only
      (yarl's ``URL.join`` takes the reference's whole path), so one answer
      per site (URL() deletes tabs and newlines first, which can turn ``/x``
      into ``//x``: a link of this kind all the same); a plain path
      (``/docs/page-1.html``: nothing to encode, decode or remove) is
      appended to the site's normalised ``scheme://authority`` directly;
    * anything else (``x.html``, ``../x``, ``?q``, ``#f``): depends on the base's
      path and query, so remembered for that one call only.

    The memory is bounded (``size`` links in all; it starts over when full).
    """

    def __init__(self, size: int = RESOLVER_SIZE) -> None:
        self.size = size
        self._everywhere: dict[str, tuple | None] = {}
        self._per_site: dict[tuple[str, str], dict[str, tuple | None]] = {}
        self._prefixes: dict[tuple[str, str], str | None] = {}
        self._count = 0

    def resolve(self, links: list[str], base: URL) -> list[tuple[str, URL, str]]:
        """``(key, url, fragment)`` for each of ``links`` seen on ``base`` that
        ``normalize`` accepts, in order."""
        if self._count > self.size:
            self._everywhere.clear()
            self._per_site.clear()
            self._prefixes.clear()
            self._count = 0
        everywhere = self._everywhere
        where = (base.scheme, base.raw_authority)
        site = self._per_site.get(where)
        if site is None:
            site = self._per_site[where] = {}
        prefix = self._prefixes.get(where, "")
        if prefix == "":
            prefix = self._prefixes[where] = _site_prefix(base)
        here: dict[str, tuple | None] = {}
        out = []
        for raw in links:
            link = raw.strip()
            if link[:1] == "/":
                memory = site
            elif _HAS_SCHEME(link):
                memory = everywhere
            else:
                memory = here
            try:
                found = memory[link]
            except KeyError:
                if memory is site and prefix is not None and _PLAIN_PATH(link):
                    url = URL(prefix + link, encoded=True)
                    found = memory[link] = (str(url), url, "")
                else:
                    found = _keyed(normalize(link, base))
                    if found is None and memory is everywhere:
                        found = _keyed(other_scheme(link))
                    memory[link] = found
                if memory is not here:
                    self._count += 1
            if found is not None:
                out.append(found)
        return out


def _site_prefix(base: URL) -> str | None:
    """``scheme://authority`` of the links ``/...`` on ``base`` resolve to, as
    ``normalize`` spells it (None: such links are not http(s))."""
    root = normalize("/", base)
    return None if root is None else str(root[0])[:-1]


def _keyed(found: tuple[URL, str] | None) -> tuple[str, URL, str] | None:
    return None if found is None else (str(found[0]), found[0], found[1])


def split_fragment(link: str) -> tuple[str, str]:
    """``("http://h/p", "frag")`` for ``"http://h/p#frag"``."""
    head, _, frag = link.partition("#")
    return head, frag


def host_key(url: URL) -> str:
    """The host a politeness limit applies to: the host name, plus the port
    when it is not the scheme's default (so http and https of one site share it)."""
    host = url.host or ""
    if ":" in host:
        host = f"[{host}]"
    return host if url.is_default_port() else f"{host}:{url.port}"


def origin(url: URL) -> str:
    """``scheme://host[:port]`` of ``url`` (where robots.txt lives)."""
    return f"{url.scheme}://{host_key(url)}"
