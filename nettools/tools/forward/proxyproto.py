"""The PROXY protocol (HAProxy's, v1 text and v2 binary), both ways.

A load balancer in front of the forwarder can tell it who the real client is
with a PROXY header at the start of the connection (``read_header``); the
forwarder can tell its targets the same way (``header``).  The header format
is the ``proxy-protocol`` library's (sans-I/O ``pack``/``unpack``); nettools
only reads exactly the header's bytes off the socket -- never a byte more, so
what follows can still be spliced -- and bounds how long that may take.
"""

from __future__ import annotations

import time
from ipaddress import IPv4Address, IPv6Address, ip_address
from typing import Any

from proxyprotocol import ProxyProtocolIncompleteError
from proxyprotocol.detect import ProxyProtocolDetect
from proxyprotocol.result import ProxyResultIPv4, ProxyResultIPv6, ProxyResultUnknown
from proxyprotocol.v1 import ProxyProtocolV1
from proxyprotocol.v2 import ProxyProtocolV2

from ...green import socket
from ...kernel.hub import get_hub

__all__ = ["header", "read_header", "ProxyHeaderError", "V1_MAX"]

#: The longest v1 header line, CRLF included (the specification's bound).
V1_MAX = 107
_VERSIONS = {"v1": ProxyProtocolV1(), "v2": ProxyProtocolV2()}


class ProxyHeaderError(ValueError):
    """A client that should have sent a PROXY header did not, or sent a bad one."""


def header(version: str, source: Any, dest: Any) -> bytes:
    """The PROXY header (``v1`` or ``v2``) for a TCP connection from ``source``
    to ``dest`` (socket addresses); ``UNKNOWN`` when they are not IP (a unix
    socket) or not of one family."""
    pp = _VERSIONS[version]
    try:
        src_ip, dst_ip = ip_address(source[0].split("%")[0]), ip_address(dest[0].split("%")[0])
    except (TypeError, ValueError, IndexError, AttributeError):
        return pp.pack(ProxyResultUnknown())
    if isinstance(src_ip, IPv6Address) and src_ip.ipv4_mapped is not None:
        src_ip = src_ip.ipv4_mapped
    if isinstance(dst_ip, IPv6Address) and dst_ip.ipv4_mapped is not None:
        dst_ip = dst_ip.ipv4_mapped
    if isinstance(src_ip, IPv4Address) and isinstance(dst_ip, IPv4Address):
        result: Any = ProxyResultIPv4((src_ip, source[1]), (dst_ip, dest[1]),
                                      protocol=socket.SOCK_STREAM)
    elif isinstance(src_ip, IPv6Address) and isinstance(dst_ip, IPv6Address):
        result = ProxyResultIPv6((src_ip, source[1]), (dst_ip, dest[1]),
                                 protocol=socket.SOCK_STREAM)
    else:
        result = ProxyResultUnknown()
    return pp.pack(result)


def read_header(sock: Any, timeout: float | None) -> tuple[Any, Any] | None:
    """Read a PROXY header (either version) off ``sock`` within ``timeout``
    seconds: ``(source, dest)`` socket addresses of the real connection, or
    None when the header says there is none to tell (``LOCAL``, a balancer's
    own health check, or ``UNKNOWN``).  ``ProxyHeaderError`` if the client
    sends no valid header; ``TimeoutError`` if it is too slow."""
    deadline = None if timeout is None else time.monotonic() + timeout
    detect = ProxyProtocolDetect()
    data = b""
    while True:
        try:
            result = detect.unpack(data)
            break
        except ProxyProtocolIncompleteError as exc:
            want = exc.want_read
            if want.want_line:
                data += _read_line(sock, deadline, V1_MAX - len(data))
            else:
                data += _read_exactly(sock, want.want_bytes or 1, deadline)
        except ValueError as exc:  # a syntax, checksum or range error
            raise ProxyHeaderError(
                f"bad PROXY protocol header: {exc or type(exc).__name__}") from None
    if not result.proxied or result.source is None:
        return None
    return result.peername, result.sockname


def _set_deadline(sock: Any, deadline: float | None) -> None:
    if deadline is not None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("timed out")
        sock.settimeout(left)


def _read_exactly(sock: Any, n: int, deadline: float | None) -> bytes:
    chunks = []
    while n > 0:
        _set_deadline(sock, deadline)
        chunk = sock.recv(n)
        if not chunk:
            raise ProxyHeaderError("connection closed inside the PROXY protocol header")
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _read_line(sock: Any, deadline: float | None, limit: int) -> bytes:
    """Up to and with the next LF, peeking first so no byte past it is read."""
    have = 0
    while True:
        _set_deadline(sock, deadline)
        peek = sock.recv(max(limit, 1), socket.MSG_PEEK)
        if not peek:
            raise ProxyHeaderError("connection closed inside the PROXY protocol header")
        end = peek.find(b"\n")
        if end >= 0:
            return _read_exactly(sock, end + 1, deadline)
        if len(peek) >= limit:
            raise ProxyHeaderError("PROXY protocol v1 header longer than 107 bytes")
        if len(peek) == have:  # nothing new since the last look: wait for more
            left = None if deadline is None else max(deadline - time.monotonic(), 0.001)
            get_hub().wait_read(sock.fileno(), left, TimeoutError("timed out"))
        have = len(peek)
