"""Parsing the CLI's argument syntaxes: durations, sizes and addresses.

Each parser raises ``ValueError`` with a message fit to show the user as is;
the CLI turns that into a usage error (exit 2).
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass

from ..tools.plumbing.service import format_address

__all__ = ["parse_duration", "parse_size", "Address", "parse_address"]

_DURATION = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+)\s*([KMG])?(?:i?B)?\s*$", re.I)
_SIZE_UNITS = {None: 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_duration(text: str) -> float | None:
    """``500ms``, ``30s``, ``5m``, ``1h`` or plain seconds -> seconds.
    ``0``, ``none`` and ``off`` mean no limit (None)."""
    if text.strip().lower() in ("none", "off", "0", ""):
        return None
    m = _DURATION.match(text)
    if not m:
        raise ValueError(f"invalid duration {text!r} (use e.g. 500ms, 30s, 5m)")
    return float(m.group(1)) * _DURATION_UNITS[m.group(2)]


def parse_size(text: str) -> int:
    """``65536``, ``64K``, ``64KiB``, ``10M`` -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"invalid size {text!r} (use e.g. 65536, 64K, 10M)")
    unit = m.group(2).upper() if m.group(2) else None
    return int(m.group(1)) * _SIZE_UNITS[unit]


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
        return format_address(self.sockaddr, self.family)


def _port(text: str, whole: str) -> int:
    if not text.isdigit():
        raise ValueError(f"invalid port {text!r} in {whole!r}")
    port = int(text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} out of range 0-65535 in {whole!r}")
    return port


def parse_address(text: str, default_host: str = "127.0.0.1") -> Address:
    """``PORT``, ``HOST:PORT``, ``[V6]:PORT`` or ``unix:/PATH``."""
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
