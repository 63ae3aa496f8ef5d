"""Running a handler on a websocket the handshake (``handshake.py``) has just
opened: ``serve_websocket`` sends the 101, hands a graceful stop of the server
the connection's way of going away, runs the handler, and closes the connection
afterwards as the handler's end says (normally, failed, or killed).
"""

from __future__ import annotations

import logging
from typing import Any

from websockets.frames import CloseCode
from websockets.server import ServerProtocol

from .connection import Handler, WebSocket, WebSocketClosed

__all__ = ["serve_websocket"]

log = logging.getLogger("nettools.websocket")


def serve_websocket(
    handler: Handler,
    sock: Any,
    proto: ServerProtocol,
    environ: dict[str, Any],
    leftover: bytes,
    *,
    ping_interval: float | None,
    ping_timeout: float | None,
    close_timeout: float,
) -> None:
    """Run ``handler`` on the websocket ``proto`` just opened on ``sock``, then close it.

    ``sock`` is the connection taken over from the WSGI server and ``leftover``
    what the client sent after its request; the protocol holds the handshake's
    101 response, not sent yet.  A graceful stop of the server closes the
    connection with 1001 while it is idle; a handler that fails or is killed
    gets the connection closed with 1011 or 1001.
    """
    ws = WebSocket(
        sock,
        proto,
        environ,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
    )
    try:
        ws._flush()  # nobody else can send yet
    except WebSocketClosed:
        return
    on_stop = environ.get("nettools.on_stop")
    if on_stop is not None:
        on_stop(ws._going_away)
    try:
        _run(handler, ws, leftover)
    finally:
        if on_stop is not None:
            on_stop(None)
        ws._cancel_cutoff()


def _run(handler: Handler, ws: WebSocket, leftover: bytes) -> None:
    try:
        ws._start(leftover)
        handler(ws)
    except WebSocketClosed:
        # The peer went away while the handler sent: an ordinary end.
        log.debug("websocket %s: peer gone", ws.path)
        ws._abort(CloseCode.NORMAL_CLOSURE, "")
    except Exception:
        log.exception("websocket handler %r failed on %s", handler, ws.path)
        ws._abort(CloseCode.INTERNAL_ERROR, "")
    except BaseException:
        # Killed (say, by a server stop running out of patience): say goodbye.
        ws._abort(CloseCode.GOING_AWAY, "")
        raise
    else:
        ws._end()
