"""Name resolution off the hub: the green ``socket`` module's resolver.

``getaddrinfo`` and friends run the C functions in the thread pool, so
``/etc/hosts``, search domains and nsswitch behave exactly as without
nettools; numeric addresses are handled inline without a thread.  The green
``socket`` module re-exports every name here.
"""

from __future__ import annotations

import socket as _stdlib
from typing import Any

from ..kernel import tpool as _tpool

#: The standard module's functions this module stands in for (green
#: ``socket``'s ``__patched__`` names them).
RESOLVER_NAMES = (
    "getaddrinfo", "gethostbyname", "gethostbyname_ex", "gethostbyaddr", "getnameinfo", "getfqdn",
)  # fmt: skip
__all__ = ["is_numeric_host", *RESOLVER_NAMES]

_c = _stdlib._socket  # the C module: monkey-patching never replaces its functions
_AF_INET, _AF_INET6 = _stdlib.AF_INET, _stdlib.AF_INET6


def is_numeric_host(host: Any) -> bool:
    """True for None/'' and literal IPv4/IPv6 addresses (with a ``%scope``):
    no lookup needed."""
    if not host:
        return True
    if isinstance(host, (bytes, bytearray)):
        host = host.decode("ascii", "replace")
    try:
        _stdlib.inet_pton(_AF_INET, host)
        return True
    except (OSError, ValueError, TypeError):
        pass
    try:
        _stdlib.inet_pton(_AF_INET6, host.split("%", 1)[0])
        return True
    except (OSError, ValueError, TypeError):
        return False


def getaddrinfo(
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> list:
    """``socket.getaddrinfo`` run in the thread pool (inline for numeric hosts)."""
    if is_numeric_host(host) and (port is None or isinstance(port, int) or str(port).isdigit()):
        infos = _c.getaddrinfo(host, port, family, type, proto, flags)
    else:
        infos = _tpool.execute(_c.getaddrinfo, host, port, family, type, proto, flags)
    # As socket.getaddrinfo does: family and type as enums where they are known.
    return [
        (_as_enum(af, _stdlib.AddressFamily), _as_enum(kind, _stdlib.SocketKind), *rest)
        for af, kind, *rest in infos
    ]


def _as_enum(value: int, enum: Any) -> Any:
    try:
        return enum(value)
    except ValueError:
        return value


def gethostbyname(hostname: str) -> str:
    if is_numeric_host(hostname):
        return _c.gethostbyname(hostname)
    return _tpool.execute(_c.gethostbyname, hostname)


def gethostbyname_ex(hostname: str) -> tuple:
    return _tpool.execute(_c.gethostbyname_ex, hostname)


def gethostbyaddr(ip_address: str) -> tuple:
    return _tpool.execute(_c.gethostbyaddr, ip_address)


def getnameinfo(sockaddr: tuple, flags: int) -> tuple:
    if not isinstance(sockaddr, tuple):
        # Fail here, without a thread hop; and drop our reference to the argument
        # first, as the C function holds none once it has raised.
        del sockaddr
        raise TypeError("getnameinfo() argument 1 must be a tuple")
    numeric = _stdlib.NI_NUMERICHOST | _stdlib.NI_NUMERICSERV
    if flags & numeric == numeric and is_numeric_host(sockaddr[0]):
        return _c.getnameinfo(sockaddr, flags)
    return _tpool.execute(_c.getnameinfo, sockaddr, flags)


def getfqdn(name: str = "") -> str:
    return _tpool.execute(_blocking_getfqdn, name)


def _blocking_getfqdn(name: str) -> str:
    # socket.getfqdn's rules, on the C functions (the module's may be green now).
    name = name.strip()
    if not name or name in ("0.0.0.0", "::"):
        name = _c.gethostname()
    try:
        hostname, aliases, _ = _c.gethostbyaddr(name)
    except OSError:
        return name
    for candidate in [hostname, *aliases]:
        if "." in candidate:
            return candidate
    return hostname
