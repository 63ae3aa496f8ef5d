"""Address vetting: which addresses a client may connect to.

Direct connections are vetted where libcurl opens each socket (see
``transfer.Exchange.opensocket``), so no window opens between check and use;
through a proxy, which connects for us, the target's addresses are vetted here
beforehand.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from urllib.parse import urlsplit

from ...green import socket as gsocket
from .errors import FetchError

__all__ = ["is_public_address", "check_proxied_target"]


def is_public_address(ip: str) -> bool:
    """True for a globally routable unicast address (not private, loopback,
    link-local, shared, reserved, multicast or unspecified)."""
    try:
        addr = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast


def check_proxied_target(url: str, allow: Callable[[str], bool]) -> None:
    """Through a proxy the proxy connects: vet the target's addresses ourselves.

    Raises ``FetchError(kind='refused-address')`` unless ``allow`` accepts one
    of the addresses ``url``'s host resolves to; a name we cannot resolve is
    left to the proxy."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        infos = gsocket.getaddrinfo(host, parts.port or 80, 0, gsocket.SOCK_STREAM)
    except (gsocket.gaierror, UnicodeError):
        return  # the proxy may know names we do not; it reports failures itself
    if not any(allow(info[4][0]) for info in infos):
        raise FetchError(url, "refused-address", f"{host} resolves to a non-public address")
