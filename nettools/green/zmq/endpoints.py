"""ZeroMQ endpoints as the services write them, and green sockets opened on them.

An endpoint is ``bind:URL`` or ``connect:URL``; a bare ``URL`` binds.  A bound
``tcp://HOST:0`` (or ``:*``) takes a free port, and ``open_socket`` says which.  The zmq
tools, the chat's bus and the distributed crawl all open their sockets this way.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass
from typing import Any

import zmq

from .sockets import Context, Socket

__all__ = ["TRANSPORTS", "Endpoint", "EndpointError", "parse_endpoint", "open_socket", "SocketSet"]

#: Transports libzmq may know; anything else is refused before libzmq sees it.
TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm", "tipc", "vmci", "ws", "wss")
# errnos of bind/connect that mean the endpoint itself is wrong, not the world.
_BAD_ENDPOINT = {errno.EINVAL, errno.EPROTONOSUPPORT, errno.ENODEV, zmq.ENOCOMPATPROTO}


class EndpointError(ValueError):
    """An endpoint that cannot be right (bad syntax, unknown transport or host)."""


@dataclass(frozen=True)
class Endpoint:
    """A ZeroMQ endpoint URL and whether the socket binds it or connects to it."""

    url: str
    bind: bool = True

    def __str__(self) -> str:
        return ("bind:" if self.bind else "connect:") + self.url


def parse_endpoint(text: str) -> Endpoint:
    """``bind:URL``, ``connect:URL`` or ``URL`` (binds) -> ``Endpoint``."""
    bind = True
    url = text.strip()
    head, sep, rest = url.partition(":")
    if sep and head in ("bind", "connect"):
        bind, url = head == "bind", rest
    transport, sep, address = url.partition("://")
    if not sep or not address:
        raise EndpointError(
            f"invalid endpoint {text!r} (use e.g. tcp://127.0.0.1:5555, "
            "connect:tcp://host:5555, ipc:///tmp/sock)"
        )
    if transport not in TRANSPORTS:
        raise EndpointError(
            f"invalid endpoint {text!r}: unknown transport {transport!r} "
            f"(one of {', '.join(TRANSPORTS)})"
        )
    return Endpoint(url, bind)


def open_socket(
    ctx: Any,
    kind: int,
    endpoint: Endpoint,
    *,
    hwm: int | None = None,
    linger: float | None = 1.0,
    options: dict[int, Any] | None = None,
) -> tuple[Any, str]:
    """A green socket of type ``kind`` bound or connected to ``endpoint``,
    and the endpoint it really uses (a port-0 bind resolved).

    ``hwm`` sets both high-water marks; ``linger`` is how long closing waits to
    deliver what is queued (None: until done); ``options`` are more socket
    options, set before binding or connecting.  A wrong endpoint raises
    ``EndpointError``; a failure to bind (address in use, a missing directory)
    raises ``OSError``.
    """
    sock = ctx.socket(kind)
    try:
        sock.linger = -1 if linger is None else int(linger * 1000)
        if hwm is not None:
            sock.sndhwm = hwm
            sock.rcvhwm = hwm
        for option, value in (options or {}).items():
            sock.setsockopt(option, value)
        try:
            if endpoint.bind:
                sock.bind(endpoint.url)
            else:
                sock.connect(endpoint.url)
        except zmq.ZMQError as exc:
            verb = "bind" if endpoint.bind else "connect to"
            reason = zmq.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno in _BAD_ENDPOINT:
                raise EndpointError(f"cannot {verb} {endpoint.url}: {reason}") from None
            raise OSError(exc.errno, f"cannot {verb} {endpoint.url}: {reason}") from None
    except BaseException:
        sock.close(0)
        raise
    real = sock.getsockopt(zmq.LAST_ENDPOINT).decode() if endpoint.bind else endpoint.url
    return sock, real


_SETS = object()  # "the set's high-water mark"


class SocketSet:
    """Sockets of one service, opened on endpoints with the same settings and closed
    together.

    ``ctx``: the green context to open them on; None makes one that ``close`` also
    ends.  ``hwm``, ``linger``: as in ``open_socket``.  ``endpoints`` maps each
    socket's name to the endpoint it really uses.
    """

    def __init__(
        self, ctx: Context | None = None, *, hwm: int | None = None, linger: float | None = 1.0
    ) -> None:
        self.owns_context = ctx is None
        self.ctx = Context() if ctx is None else ctx
        self.hwm = hwm
        self.linger = linger
        self.endpoints: dict[str, str] = {}
        self.sockets: list[Socket] = []

    def open(
        self, name: str, kind: int | str, endpoint: Endpoint | None, *, hwm: Any = _SETS,
        **options: Any,
    ) -> Socket | None:
        """A socket of type ``kind`` (a constant, or its name: ``"PUB"``) on
        ``endpoint`` (None: no socket, None returned), with socket ``options`` by
        name (``immediate=1``); ``hwm`` overrides the set's (None: libzmq's).
        Raises as ``open_socket`` does."""
        if endpoint is None:
            return None
        if isinstance(kind, str):
            kind = getattr(zmq, kind.upper())
        opts = {getattr(zmq, key.upper()): value for key, value in options.items()}
        sock, self.endpoints[name] = open_socket(
            self.ctx, kind, endpoint, hwm=self.hwm if hwm is _SETS else hwm,
            linger=self.linger, options=opts,
        )  # fmt: skip
        self.sockets.append(sock)
        return sock

    def close(self) -> None:
        """Close every socket (each lingers as set), then end the context if it is ours."""
        sockets, self.sockets = self.sockets, []
        for sock in sockets:
            sock.close()
        if self.owns_context:
            self.ctx.destroy()  # closes what others opened on it too, then ends it
