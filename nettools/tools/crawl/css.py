"""Links of CSS, read with a real CSS tokenizer (tinycss2).

Stylesheets, ``<style>`` elements and ``style`` attributes link with
``url(...)`` (quoted or not, in any case), the string of an ``@import``, and
the strings of ``image-set()``.  Comments, other strings (``content: "url(x)"``)
and escapes are the tokenizer's business, so what is not a link is not taken
for one.  The URLs come back raw, in order, for the caller to resolve: against
the stylesheet's own URL, or the page's base URL for CSS inside a page.
"""

from __future__ import annotations

from collections.abc import Iterable

import tinycss2
from tinycss2.bytes import decode_stylesheet_bytes

__all__ = ["css_links", "stylesheet_links", "CSS_TYPES", "might_link"]

CSS_TYPES = frozenset({"text/css"})
#: Functions whose string arguments are URLs.
_IMAGE_SETS = frozenset({"image-set", "-webkit-image-set"})


def might_link(text: str) -> bool:
    """A cheap test before tokenizing: CSS without ``url(``, ``@import`` or
    ``image-set`` (in any case) has no link."""
    lowered = text.lower()
    return "url(" in lowered or "@import" in lowered or "image-set" in lowered


def css_links(text: str) -> list[str]:
    """The URLs ``text`` (a stylesheet, or declarations) links to, in order."""
    found: list[str] = []
    _walk(tinycss2.parse_component_value_list(text, skip_comments=True), found)
    return found


def stylesheet_links(body: bytes, charset: str | None = None) -> list[str]:
    """The URLs a stylesheet fetched as ``body`` links to; ``charset`` is the
    one its Content-Type names (CSS's own rules decide when it names none)."""
    text, _ = decode_stylesheet_bytes(body, protocol_encoding=charset, environment_encoding=None)
    return css_links(text) if might_link(text) else []


def _walk(tokens: Iterable, found: list[str]) -> None:
    after_import = False
    for token in tokens:
        kind = token.type
        if kind in ("whitespace", "comment"):
            continue
        if kind == "url":
            found.append(token.value)
        elif kind == "function":
            name = token.lower_name
            if name == "url":
                _first_string(token.arguments, found)
            elif name in _IMAGE_SETS:
                found.extend(t.value for t in token.arguments if t.type == "string")
                _walk(token.arguments, found)
            else:
                _walk(token.arguments, found)
        elif kind == "string" and after_import:
            found.append(token.value)
        elif kind in ("{} block", "[] block", "() block"):
            _walk(token.content, found)
        after_import = kind == "at-keyword" and token.lower_value == "import"


def _first_string(arguments: list, found: list[str]) -> None:
    """``url("x")``: a function whose first argument is the URL."""
    for token in arguments:
        if token.type == "whitespace":
            continue
        if token.type == "string":
            found.append(token.value)
        return
