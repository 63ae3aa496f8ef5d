"""``eventlet.support.greendns``: name resolution, and eventlet's address tests.

eventlet resolves names with dnspython, green; nettools runs ``getaddrinfo``
in the thread pool (see the README, "Moving from eventlet").  So this module
is the green socket module's namespace -- ``getaddrinfo``, ``gethostbyname``,
``gethostbyname_ex``, ``getnameinfo`` are the very functions
``eventlet.green.socket`` has -- with eventlet's ``is_ipv4_addr``,
``is_ipv6_addr`` and ``is_ip_addr``, which programs use to tell an address
from a host name.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ...green.socket import *  # noqa: F403 - the green socket module's names
from ...green.socket import __all__ as _socket_names

__all__ = [*_socket_names, "is_ipv4_addr", "is_ipv6_addr", "is_ip_addr"]


def is_ipv4_addr(host: Any) -> bool:
    """True if ``host`` is a string holding an IPv4 address (dotted quad)."""
    return isinstance(host, str) and _parses_as(ipaddress.IPv4Address, host)


def is_ipv6_addr(host: Any) -> bool:
    """True if ``host`` is a string holding an IPv6 address (a ``%scope`` suffix allowed)."""
    return isinstance(host, str) and _parses_as(ipaddress.IPv6Address, host.partition("%")[0])


def is_ip_addr(host: Any) -> bool:
    """True if ``host`` is a string holding an IPv4 or IPv6 address."""
    return is_ipv4_addr(host) or is_ipv6_addr(host)


def _parses_as(kind: type, text: str) -> bool:
    try:
        kind(text)
    except ValueError:
        return False
    return True
