"""The application's part of a response head: its status line and headers, checked
and encoded once for each distinct ``(status, headers)`` and then reused.

An application answers most requests with the same few heads (a hello world,
an API's JSON responses, a static file's type): building one means lowering
every name, looking for the headers that frame the body, formatting the lines
and checking them for injected line breaks.  The result depends on nothing but
the status, the headers and two server settings, so ``app_head`` keeps it in a
small bounded table keyed by exactly those.  The framing headers
(Content-Length, Transfer-Encoding, Connection) and Date are not part of it:
the response writer adds them per response.
"""

from __future__ import annotations

from typing import Any

__all__ = ["AppHead", "app_head", "build_app_head", "capitalized", "checked_lines", "str_pairs"]

#: ``(head, declared, has_date, close, no_body)``: the status line and the
#: headers the application gave, encoded, framing headers left out; the
#: Content-Length it declared (None if none); whether it set Date; whether it
#: asked for ``Connection: close``; whether the status forbids a body.
AppHead = tuple[bytes, "int | None", bool, bool, bool]

# Statuses whose responses never have a body (RFC 9110 6.4.1).
_NO_BODY = frozenset({"204", "304"} | {str(c) for c in range(100, 200)})

# Response headers the server looks at (framing) or sets itself.
_LENGTH, _DATE, _CONNECTION, _ENCODING = range(4)
_HOP = {
    "content-length": _LENGTH,
    "date": _DATE,
    "connection": _CONNECTION,
    "transfer-encoding": _ENCODING,
}

_CAPITALIZED: dict[str, str] = {}
_CAPITALIZED_MAX = 512  # distinct header names remembered (an app's are few)


def capitalized(name: str) -> str:
    """A header name Capitalized-Like-This (as eventlet sends them by default)."""
    done = _CAPITALIZED.get(name)
    if done is None:
        if name.isascii():
            done = "-".join(part.capitalize() for part in name.split("-"))
        else:  # ASCII letters only ("ß" stays, "ÿ" has no Latin-1 capital)
            raw = name.encode("latin-1", "surrogateescape")
            done = b"-".join(p.capitalize() for p in raw.split(b"-")).decode("latin-1")
        if len(_CAPITALIZED) < _CAPITALIZED_MAX:
            _CAPITALIZED[name] = done
    return done


#: (status line prefix, status, capitalize, *headers) -> AppHead.  Applications
#: whose heads all differ (a per-response cookie, say) would fill it for nothing:
#: it is emptied when full rather than left to grow or to freeze.
_CACHE: dict[tuple, AppHead] = {}
_CACHE_MAX = 256


def app_head(prefix: str, status: str, headers: Any, capitalize: bool) -> AppHead:
    """``build_app_head(...)``, from the table when the same head was built before."""
    try:
        key = (prefix, status, capitalize, *headers)
        entry = _CACHE.get(key)
    except TypeError:  # an unhashable header (a list pair): nothing to look up
        return build_app_head(prefix, status, headers, capitalize)
    if entry is not None:
        return entry
    entry = build_app_head(prefix, status, headers, capitalize)
    if str_pairs(headers):
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.clear()
        _CACHE[key] = entry
    return entry


def str_pairs(headers: Any) -> bool:
    """True if ``headers`` are all ``(str, str)`` tuples: then headers equal to
    them are made of the same strings, and format the same (1 == 1.0 == True,
    but each formats differently), so a head built for them can be reused."""
    return all(
        type(pair) is tuple and len(pair) == 2 and type(pair[0]) is str and type(pair[1]) is str
        for pair in headers
    )


def build_app_head(prefix: str, status: str, headers: Any, capitalize: bool) -> AppHead:
    """The ``AppHead`` of ``status`` and ``headers`` (``prefix`` is ``"HTTP/1.1 "``
    or ``"HTTP/1.0 "``; ``capitalize`` sends names Capitalized-Like-This).

    Raises ValueError for a status or header that would split the response (a
    CR or LF in it) or a status without a numeric code, and for a Content-Length
    that is not a number.
    """
    lines = [f"{prefix}{status}\r\n"]
    append = lines.append
    declared = None
    has_date = False
    close = False
    for name, value in headers:
        kind = _HOP.get(name.lower())
        if kind is not None:
            if kind == _LENGTH:
                declared = int(value)
            elif kind == _DATE:
                has_date = True
            else:
                # Framing is the server's business; an app's "close" is honoured.
                if kind == _CONNECTION and value.strip().lower() == "close":
                    close = True
                continue
        if capitalize:
            name = capitalized(name)
        append(f"{name}: {value}\r\n")
    code = status[:3]
    if not code.isdigit():
        raise ValueError(f"invalid status in the response: {status!r}")
    head = checked_lines(lines, "status or header in the response")
    return head, declared, has_date, close, code in _NO_BODY


def checked_lines(lines: list[str], what: str) -> bytes:
    """``lines`` of a response head, each ending in its CRLF, joined and encoded.

    Any other CR or LF in them came from the application and would split the
    response (header injection): ValueError, saying it is an invalid ``what``.
    """
    text = "".join(lines)
    n = len(lines)
    if text.count("\n") != n or text.count("\r") != n:
        raise ValueError(f"invalid {what}: {text!r}")
    return text.encode("latin-1")
