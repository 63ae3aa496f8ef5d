"""Links and anchors of an HTML page, from a real HTML parser (selectolax/lexbor).

Links come from ``a[href]``, ``area[href]``, ``link[href]``, ``img[src]``,
``script[src]``, ``iframe[src]``, ``source[src]`` and every ``srcset``;
relative ones resolve against ``<base href>`` when the page has one.  Anchors
(the targets of ``#fragment`` links) are element ids and ``a[name]``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from .urls import normalize

__all__ = ["PageLinks", "extract"]

# Which attribute holds the link, per element; every element's srcset and id count too.
_LINK_ATTRS = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "script": "src",
    "iframe": "src",
    "source": "src",
}
# One selector, so the document is walked once (in document order).
_SELECTOR = ",".join(
    [f"{tag}[{attr}]" for tag, attr in _LINK_ATTRS.items()]
    + ["[srcset]", "[id]", "a[name]", "base[href]"]
)


@dataclass
class PageLinks:
    """What a page links to (raw attribute values, in document order) and its anchors."""

    base: URL
    links: list[str] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)


def _srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` ("a.png 1x, b.png 2x")."""
    urls = []
    for candidate in value.split(","):
        parts = candidate.split()
        if parts:
            urls.append(parts[0])
    return urls


def extract(html: bytes | str, page_url: URL) -> PageLinks:
    """Parse ``html`` fetched from ``page_url``."""
    found = PageLinks(page_url)
    base_href = None
    seen: set[int] = set()
    for node in LexborHTMLParser(html).css(_SELECTOR):
        # An element matching several of the selectors comes once per match.
        if node.mem_id in seen:
            continue
        seen.add(node.mem_id)
        attrs = node.attributes
        tag = node.tag
        if tag == "base":
            if base_href is None:
                base_href = attrs.get("href") or ""
            continue
        value = attrs.get(_LINK_ATTRS.get(tag, ""))
        if value:
            found.links.append(value)
        srcset = attrs.get("srcset")
        if srcset:
            found.links.extend(_srcset_urls(srcset))
        if attrs.get("id"):
            found.anchors.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            found.anchors.add(attrs["name"])
    if base_href:
        resolved = normalize(base_href, page_url)
        if resolved is not None:
            found.base = resolved[0]
    return found
