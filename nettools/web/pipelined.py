"""Where the requests a client pipelined behind one request begin, in the
chunk that brought them: for a connection taken over after such a request
(``HttpConnection.leftover_after``), which hands those bytes on.

The parser reports no positions, so a fresh parser is run over suffixes of the
chunk until one reads as exactly those requests.
"""

from __future__ import annotations

import re

import httptools

__all__ = ["pipelined_tail"]


class _Probe:
    """Parser callbacks that only record the shape of what they parse."""

    def __init__(self) -> None:
        self.heads: list[tuple[bytes, bytes]] = []
        self.in_head = False
        self._url: list[bytes] = []
        self.parser = httptools.HttpRequestParser(self)

    def on_message_begin(self) -> None:
        self.in_head = True
        self._url = []

    def on_url(self, part: bytes) -> None:
        self._url.append(part)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self.heads.append((self.parser.get_method(), b"".join(self._url)))


_REQUEST_START = re.compile(rb"[A-Z]")


def pipelined_tail(
    chunk: bytes, want: list[tuple[bytes, bytes]], want_error: bool, in_head: bool
) -> bytes:
    """The suffix of ``chunk`` that holds the requests pipelined after the current one:
    the ``(method, target)`` heads ``want``, then a parse error if ``want_error``,
    else an unfinished head if ``in_head``.

    The smallest suffix that a fresh parser reads as exactly those.  Only runs
    when a client pipelined behind a request whose connection is then taken over.
    """
    for match in _REQUEST_START.finditer(chunk):
        start = match.start()
        probe = _Probe()
        try:
            probe.parser.feed_data(chunk[start:])
            error = False
        except httptools.HttpParserUpgrade:
            error = False
        except httptools.HttpParserError:
            error = True
        if probe.heads == want and error == want_error and (error or probe.in_head == in_head):
            return chunk[start:]
    raise RuntimeError("cannot locate the requests pipelined behind the one taken over")
