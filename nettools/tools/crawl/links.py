"""Links and anchors of an HTML page, from a real HTML parser (selectolax/lexbor).

Links come from ``a[href]``, ``area[href]``, ``link[href]``, ``img[src]``,
``script[src]``, ``iframe[src]``, ``source[src]``, every ``srcset``, and the
CSS of ``<style>`` elements and ``style`` attributes (``css.py``); relative
ones resolve against ``<base href>`` when the page has one.  Anchors (the
targets of ``#fragment`` links) are element ids and ``a[name]``.
"""

from __future__ import annotations

import ctypes
import sys
from dataclasses import dataclass, field

from selectolax.lexbor import LexborHTMLParser
from yarl import URL

from .css import css_links, might_link
from .urls import normalize

__all__ = ["PageLinks", "extract", "keep_parser_memory", "LINK_ATTRS", "srcset_urls"]

#: glibc's mallopt() parameters: free memory kept at the top of the heap, and the
#: size from which a block is mapped on its own (and unmapped when freed).
_M_TOP_PAD = -2
_M_MMAP_THRESHOLD = -3
#: A small document takes blocks of about 300 KiB: both well above that.
_TOP_PAD = 4 * 2**20
_MMAP_THRESHOLD = 2 * 2**20
_kept = False

#: Which attribute holds the link, per element; every element's srcset and id count too.
LINK_ATTRS = {
    "a": "href",
    "area": "href",
    "link": "href",
    "img": "src",
    "script": "src",
    "iframe": "src",
    "source": "src",
}


@dataclass
class PageLinks:
    """What a page links to (raw attribute values, in document order) and its anchors."""

    base: URL
    links: list[str] = field(default_factory=list)
    anchors: set[str] = field(default_factory=set)


def srcset_urls(value: str) -> list[str]:
    """The URLs of a ``srcset`` ("a.png 1x, b.png 2x")."""
    urls = []
    for candidate in value.split(","):
        parts = candidate.split()
        if parts:
            urls.append(parts[0])
    return urls


def keep_parser_memory() -> None:
    """Let the parser's memory be reused from page to page instead of going
    back to the OS after each one.

    Each parse takes and frees blocks of a few hundred KiB.  With glibc's
    defaults they are mapped and unmapped, or the heap grows and is trimmed
    again, so every page pays for system calls and page faults: three
    quarters of the parse of a small page.  Blocks under 2 MiB now come from
    the heap, which keeps 4 MiB spare.  Process-wide and once, so it is for
    the program that owns the process (``nettools crawl`` calls it), not for
    the library; a no-op where the C library is not glibc.
    """
    global _kept
    if _kept or not sys.platform.startswith("linux"):
        return
    _kept = True
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return
    mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
    mallopt(_M_TOP_PAD, _TOP_PAD)


def extract(html: bytes | str, page_url: URL) -> PageLinks:
    """Parse ``html`` fetched from ``page_url``."""
    found = PageLinks(page_url)
    links = found.links
    anchors = found.anchors
    base_href = None
    parser = LexborHTMLParser(html)
    root = parser.root
    # Only pages with a <style> element pay for looking at the tag of every
    # element without attributes (a lookup by tag name is cheap in lexbor).
    styled = bool(parser.tags("style"))
    # One walk over the elements in document order, reading each one's
    # attributes once: a CSS query costs more than the parse itself (lexbor
    # sets up a selector engine per document).
    for node in root.traverse() if root is not None else ():
        attrs = node.attributes
        if not attrs:
            if styled and node.tag == "style":
                _style_links(node.text(), links)
            continue
        tag = node.tag
        if styled and tag == "style":
            _style_links(node.text(), links)
        style = attrs.get("style")
        if style:
            _style_links(style, links)
        if tag == "base" and "href" in attrs:
            if base_href is None:  # the first <base href> counts
                base_href = attrs["href"] or ""
            continue
        name = LINK_ATTRS.get(tag)
        if name is not None:
            value = attrs.get(name)
            if value:
                links.append(value)
        srcset = attrs.get("srcset")
        if srcset:
            links.extend(srcset_urls(srcset))
        anchor = attrs.get("id")
        if anchor:
            anchors.add(anchor)
        if tag == "a":
            anchor = attrs.get("name")
            if anchor:
                anchors.add(anchor)
    if base_href:
        resolved = normalize(base_href, page_url)
        if resolved is not None:
            found.base = resolved[0]
    return found


def _style_links(css: str, links: list[str]) -> None:
    if might_link(css):
        links.extend(css_links(css))
