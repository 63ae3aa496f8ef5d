"""URL normalisation: one spelling per resource, so each is fetched once.

``normalize`` resolves a link against its page, keeps only http(s), drops the
fragment, lowercases scheme and host, removes the default port, normalises
percent-encoding (``%7e`` -> ``~``, ``%2f`` kept) and gives an empty path
``/``.  The string form of the result is the de-duplication key.
"""

from __future__ import annotations

from urllib.parse import unquote, urlsplit, urlunsplit

from yarl import URL

__all__ = ["normalize", "split_fragment", "host_key", "origin", "is_http"]

_SCHEMES = ("http", "https")


def is_http(url: URL) -> bool:
    return url.scheme in _SCHEMES and bool(url.host)


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
