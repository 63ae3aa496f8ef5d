"""TLS on either side of the forwarder: the contexts a relay needs.

A relay passes half-closes on, and OpenSSL 3 by default treats a bare TCP FIN
(no close_notify first) as a fatal error and refuses to write after it; so
every context a ``Forwarder`` uses gets ``OP_IGNORE_UNEXPECTED_EOF``, and a FIN
reads as EOF while the other direction keeps flowing.  How a TLS side is
half-closed in turn is the relay's business (see ``relay.shutdown_write``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ...green import ssl
from ...net import green_context
from .errors import reason
from .rules import Target

__all__ = ["relay_context", "target_tls_context"]


def relay_context(ctx: Any) -> Any:
    """``ctx`` (None passes through) made fit for a relay, in place: green, and
    reading a bare FIN as EOF."""
    if ctx is None:
        return None
    ctx.options |= getattr(ssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return green_context(ctx)


def target_tls_context(
    targets: Iterable[Target], cafile: str | None = None, verify: bool = True
) -> Any:
    """A client TLS context for speaking TLS to ``targets``: verifying them
    against ``cafile``'s CAs (default: the system's), or not at all.

    Raises ``ValueError`` saying why in one line if ``cafile`` does not load,
    or if a target to verify is a unix socket (it has no host name).
    """
    try:
        ctx = ssl.create_default_context(cafile=cafile)
    except OSError as exc:  # ssl.SSLError is one too
        raise ValueError(f"cannot load --tls-target-ca: {reason(exc)}") from None
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    elif any(t.host is None for t in targets):
        raise ValueError("--tls-target to a unix socket has no host name to verify; "
                         "add --tls-target-insecure")
    return ctx
