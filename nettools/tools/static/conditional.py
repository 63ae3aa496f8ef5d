"""Conditional and range requests on a file (RFC 9110, sections 13 and 14).

``decide`` answers one GET or HEAD for a file from its request headers, in the
order RFC 9110 13.2.2 gives: ``If-Match`` (else ``If-Unmodified-Since``) may
fail the request (412); ``If-None-Match`` (else ``If-Modified-Since``) may make
it a 304; then a GET's ``Range`` (one range of bytes, honoured only when
``If-Range`` still matches) makes it a 206, or a 416 when the range lies
beyond the file.  Several ranges in one request are answered with the whole
file, as the RFC allows, and so is a ``Range`` that does not parse.
"""

from __future__ import annotations

import re
from email.utils import parsedate_to_datetime

from .files import FileInfo

__all__ = ["CONDITIONAL_HEADERS", "Decision", "decide", "parse_range"]

#: The request headers ``decide`` reads (lower case).
CONDITIONAL_HEADERS = frozenset(
    {b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"range",
     b"if-range"}
)

_ETAG = re.compile(rb'(W/)?"[^"]*"')
_RANGE = re.compile(rb"^\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*$", re.I)

#: (status, first byte, last byte): the range is set for a 206 only.
Decision = tuple[int, int, int]


def decide(method: str, headers: dict[bytes, bytes], info: FileInfo) -> Decision:
    """The status for a GET or HEAD of ``info`` given the request's conditional
    headers (lower-case names): 200, 206 (with its byte range), 304, 412 or 416."""
    full = (200, 0, info.size - 1)
    if not headers:
        return full
    if_match = headers.get(b"if-match")
    if if_match is not None:
        if not _matches(if_match, info.etag, weak=False):
            return (412, 0, 0)
    else:
        since = _date(headers.get(b"if-unmodified-since"))
        if since is not None and info.mtime > since:
            return (412, 0, 0)
    if_none_match = headers.get(b"if-none-match")
    if if_none_match is not None:
        if _matches(if_none_match, info.etag, weak=True):
            return (304, 0, 0)
    else:
        since = _date(headers.get(b"if-modified-since"))
        if since is not None and info.mtime <= since:
            return (304, 0, 0)
    spec = headers.get(b"range")
    if spec is None or method != "GET" or not _if_range_holds(headers.get(b"if-range"), info):
        return full
    span = parse_range(spec, info.size)
    if span is None:
        return full
    if span == (-1, -1):
        return (416, 0, 0)
    return (206, *span)


def parse_range(spec: bytes, size: int) -> tuple[int, int] | None:
    """``bytes=FIRST-LAST``, ``bytes=FIRST-`` or ``bytes=-SUFFIX`` over a file of
    ``size`` bytes -> (first, last) byte, both included; ``(-1, -1)`` when it is
    unsatisfiable; None when the header is to be ignored (malformed, another
    unit, several ranges)."""
    m = _RANGE.match(spec)
    if m is None:
        return None
    first, last = m.group(1), m.group(2)
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            return (-1, -1)
        return (max(size - suffix, 0), size - 1)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: the whole header is ignored
    if start >= size:
        return (-1, -1)
    end = min(int(last), size - 1) if last else size - 1
    return (start, end)


def _matches(header: bytes, etag: bytes, *, weak: bool) -> bool:
    """Whether an ``If-Match``/``If-None-Match`` list holds ``etag`` (``*`` holds
    any existing file).  Our tags are strong; a ``W/`` tag only matches weakly."""
    if header.strip() == b"*":
        return True
    for m in _ETAG.finditer(header):
        if (weak or m.group(1) is None) and m.group(0)[len(m.group(1) or b"") :] == etag:
            return True
    return False


def _date(value: bytes | None) -> int | None:
    """An HTTP date as seconds since the epoch; None when absent or malformed."""
    if value is None:
        return None
    try:
        when = parsedate_to_datetime(value.decode("latin-1"))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return int(when.timestamp())


def _if_range_holds(value: bytes | None, info: FileInfo) -> bool:
    """``If-Range``: an entity tag must match strongly, a date exactly."""
    if value is None:
        return True
    value = value.strip()
    if value.startswith((b'"', b"W/")):
        return value == info.etag
    return _date(value) == info.mtime
