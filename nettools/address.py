"""Socket addresses as nettools writes and reads them: ``host:port``,
``[v6]:port``, ``unix:/path`` (``Address``, ``parse_address``,
``format_address``; ``nettools.net`` re-exports them)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import Any

__all__ = ["Address", "parse_address", "format_address", "is_abstract_unix"]


def is_abstract_unix(addr: Any) -> bool:
    """True for a unix socket address in the abstract namespace (``"\\0name"``):
    it has no file, so no permissions -- any local user may connect to it."""
    return isinstance(addr, (str, bytes, bytearray)) and addr[:1] in ("\0", b"\0")


def format_address(addr: Any) -> str:
    """``host:port``, ``[v6]:port`` or ``unix:/path`` for a socket address
    (``unix socket peer`` for the unnamed client end of a unix socket)."""
    if isinstance(addr, tuple) and len(addr) >= 2:
        host, port = addr[0], addr[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    path = addr.decode(errors="replace") if isinstance(addr, bytes) else str(addr)
    if not path:
        return "unix socket peer"
    return f"unix:{path}"


@dataclass(frozen=True)
class Address:
    """A listen or connect address: TCP/UDP host and port, or a unix socket path."""

    host: str | None
    port: int | None
    path: str | None = None

    @property
    def family(self) -> int:
        if self.path is not None:
            return socket.AF_UNIX
        return socket.AF_INET6 if self.host and ":" in self.host else socket.AF_INET

    @property
    def sockaddr(self) -> str | tuple:
        return self.path if self.path is not None else (self.host, self.port)

    def __str__(self) -> str:
        return format_address(self.sockaddr)


def _port(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid port {text!r} in {whole!r}")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range 0-65535 in {whole!r}")
    return port


def parse_address(text: str, default_host: str = "127.0.0.1") -> Address:
    """``PORT``, ``HOST:PORT``, ``[V6]:PORT`` or ``unix:/PATH`` -> an ``Address``;
    ``ValueError`` with a message fit to show the user as is."""
    text = text.strip()
    if text.startswith("unix:"):
        path = text[5:]
        if not path:
            raise ValueError(f"empty unix socket path in {text!r}")
        return Address(None, None, path)
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise ValueError(f"invalid address {text!r} (use [v6addr]:port)")
        return Address(host, _port(rest[1:], text))
    if text.isdigit():
        return Address(default_host, _port(text, text))
    host, sep, port = text.rpartition(":")
    if not sep or ":" in host:
        raise ValueError(f"invalid address {text!r} (use host:port, [v6]:port or unix:/path)")
    return Address(host or default_host, _port(port, text))
