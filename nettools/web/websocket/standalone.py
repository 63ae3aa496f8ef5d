"""A websocket over a socket whose handshake is already done: eventlet's
``RFC6455WebSocket(sock, environ, ..., client=...)``.

For programs that do the opening handshake themselves (a client that sent its
upgrade request and read the 101, or a server that answered one) and then want
framing, messages, pings and the closing handshake on the socket.  The
connection is the same ``WebSocket`` the WSGI handlers get; only the protocol
state starts OPEN, on the side given.
"""

from __future__ import annotations

from typing import Any

from websockets.extensions.permessage_deflate import PerMessageDeflate
from websockets.protocol import OPEN, Protocol, Side

from .connection import WebSocket

__all__ = ["RFC6455WebSocket"]


class _OpenProtocol(Protocol):
    """A Sans-I/O protocol already OPEN, with the attributes ``WebSocket`` reads."""

    def __init__(self, side: Side, origin: str | None, subprotocol: str | None, **kw: Any):
        super().__init__(side, state=OPEN, **kw)
        self.origin = origin
        self.subprotocol = subprotocol


class RFC6455WebSocket(WebSocket):
    """A websocket on ``sock`` (handshake done), as eventlet builds one.

    ``client=True`` masks what it sends, as a client must.  ``protocol`` is the
    subprotocol agreed; ``extensions`` eventlet's dict of what was negotiated
    (``{"permessage-deflate": {"client_no_context_takeover": ..., ...}}``);
    ``max_frame_length`` the largest message accepted.  No keepalive pings
    unless ``ping_interval`` is given.
    """

    def __init__(
        self,
        sock: Any,
        environ: dict[str, Any],
        version: int = 13,
        protocol: str | None = None,
        client: bool = False,
        extensions: dict[str, Any] | None = None,
        max_frame_length: int | None = 8 << 20,
        *,
        ping_interval: float | None = None,
    ) -> None:
        if version != 13:
            raise ValueError(f"only websocket version 13 (RFC 6455) is spoken, not {version}")
        side = Side.CLIENT if client else Side.SERVER
        proto = _OpenProtocol(
            side, environ.get("HTTP_ORIGIN"), protocol, max_size=max_frame_length
        )
        self.version = version
        super().__init__(sock, proto, environ, ping_interval=ping_interval)
        self.extensions = extensions

    @property
    def extensions(self) -> dict[str, Any]:
        """eventlet's dict of the extensions in force.  Assigning one puts those
        in force from the next frame on: for a program that built this before it
        read what the peer agreed to."""
        return self._extensions

    @extensions.setter
    def extensions(self, value: dict[str, Any] | None) -> None:
        deflate = (value or {}).get("permessage-deflate")
        client = self._proto.side is Side.CLIENT
        self._proto.extensions = [] if deflate is None else [_deflate(deflate, client)]
        self._extensions = dict(value or {})


def _deflate(params: dict[str, Any] | bool, client: bool) -> PerMessageDeflate:
    """The permessage-deflate extension from eventlet's parameter dict."""
    p = params if isinstance(params, dict) else {}
    ours, theirs = ("client", "server") if client else ("server", "client")
    return PerMessageDeflate(
        remote_no_context_takeover=bool(p.get(f"{theirs}_no_context_takeover")),
        local_no_context_takeover=bool(p.get(f"{ours}_no_context_takeover")),
        remote_max_window_bits=int(p.get(f"{theirs}_max_window_bits") or 15),
        local_max_window_bits=int(p.get(f"{ours}_max_window_bits") or 15),
    )
