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

_SELECTORS = (
    ("a[href]", "href"),
    ("area[href]", "href"),
    ("link[href]", "href"),
    ("img[src]", "src"),
    ("script[src]", "src"),
    ("iframe[src]", "src"),
    ("source[src]", "src"),
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
    tree = LexborHTMLParser(html)
    base = page_url
    base_node = tree.css_first("base[href]")
    if base_node is not None:
        resolved = normalize(base_node.attributes.get("href") or "", page_url)
        if resolved is not None:
            base = resolved[0]
    found = PageLinks(base)
    for selector, attr in _SELECTORS:
        for node in tree.css(selector):
            value = node.attributes.get(attr)
            if value:
                found.links.append(value)
    for node in tree.css("[srcset]"):
        found.links.extend(_srcset_urls(node.attributes.get("srcset") or ""))
    for node in tree.css("[id]"):
        if node.attributes.get("id"):
            found.anchors.add(node.attributes["id"])
    for node in tree.css("a[name]"):
        if node.attributes.get("name"):
            found.anchors.add(node.attributes["name"])
    return found
