"""Which addresses the feed tools fetch from: one rule for ``feeds fetch`` and
``feeds serve``.

A feed URL may come from anyone (a subscription list, an OPML file, a client of
the service), so by default only public addresses are fetched: a name is
resolved, each address checked, and the connection made to the checked address
(no second lookup to race with), and every redirect is checked again before it
is followed.  ``allow_private`` (``--allow-private``) lifts that, for feeds on
a trusted network or on this machine.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from ...green import socket as gsocket
from ...web.client import FetchError, is_public_address

__all__ = ["AddressRule", "RULE", "check_public_url", "is_public_address"]

#: The rule in words, for help texts and usage pages.
RULE = ("Only public addresses are fetched (no private, loopback or link-local ones) unless "
        "--allow-private: names are resolved, every address is checked and the checked "
        "address connected to, and each redirect is checked again.")


def check_public_url(url: str) -> None:
    """Raise ``FetchError('refused-address')`` unless every address ``url``'s
    host resolves to is public (the check of each redirect)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = gsocket.getaddrinfo(host, port, 0, gsocket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as exc:
        raise FetchError(url, "dns", f"cannot resolve {host}: {exc}") from None
    bad = sorted({info[4][0] for info in infos if not is_public_address(info[4][0])})
    if bad:
        raise FetchError(url, "refused-address", f"{host} resolves to a non-public address "
                         f"({', '.join(bad)})")  # fmt: skip


@dataclass(frozen=True)
class AddressRule:
    """The rule as the HTTP client and the fetcher take it: ``allow_address``
    for the client (None: any), ``redirect_check`` for the fetcher (None: none)."""

    allow_private: bool = False

    @property
    def allow_address(self) -> Callable[[str], bool] | None:
        return None if self.allow_private else is_public_address

    @property
    def redirect_check(self) -> Callable[[str], None] | None:
        return None if self.allow_private else check_public_url
