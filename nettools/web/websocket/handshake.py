"""The websocket opening handshake, served as a WSGI application: ``WebSocketWSGI``.

It checks the upgrade request, lets the protocol object (``websockets``'
Sans-I/O ``ServerProtocol``) accept or refuse it -- a refusal is an ordinary
HTTP response -- then takes the connection over from the WSGI server and hands
it to ``serve_websocket`` with the handler.
"""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from websockets.datastructures import Headers
from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.http11 import Request
from websockets.server import ServerProtocol

from ..wsgi import plain_response
from .connection import Handler, serve_websocket

__all__ = ["WebSocketWSGI"]



class _OneLineLog(logging.LoggerAdapter):
    """The protocol library's debug and info messages with an exception (a client's
    invalid handshake) on one line: the exception's text, not its traceback.  A
    warning or error keeps its traceback: that is a fault of ours."""

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        exc_info = kwargs.get("exc_info")
        if exc_info and level < logging.WARNING and self.isEnabledFor(level):
            del kwargs["exc_info"]
            if isinstance(exc_info, BaseException):
                exc: BaseException | None = exc_info
            else:
                exc = (sys.exc_info() if exc_info is True else exc_info)[1]
            text = msg % args if args else str(msg)
            msg, args = "%s: %s", (text, _cause_chain(exc))
        super().log(level, msg, *args, **kwargs)


def _cause_chain(exc: BaseException | None) -> str:
    """``exc`` and its causes, each as its text, on one line."""
    parts = []
    while exc is not None:
        parts.append(str(exc) or type(exc).__name__)
        exc = exc.__cause__
    return "; ".join(parts)


#: The protocol library's own messages ("connection open", "connection closed").
_proto_log = _OneLineLog(logging.getLogger("nettools.websocket.protocol"))


class WebSocketWSGI:
    """Wrap ``handler(ws)`` as a WSGI app that accepts websocket connections.

    Use it as a decorator, bare or with options (as eventlet's)::

        @WebSocketWSGI
        def handler(ws): ...

        @WebSocketWSGI(max_message_size=1 << 16, ping_interval=None)
        def handler(ws): ...

    Options:

    * ``max_message_size``: largest incoming message in bytes, after
      decompression; a larger one fails the connection with 1009.  None: no
      limit.  ``max_frame_length`` (eventlet's name) is accepted as an alias.
    * ``ping_interval``/``ping_timeout``: ping every so many seconds; fail with
      1011 if the pong takes longer than the timeout.  None disables either.
    * ``origins``: accepted values of the ``Origin`` header (strings or compiled
      regular expressions; include None to accept clients that send none);
      others get 403 before the handshake.  None (default): any origin.
    * ``compression``: offer permessage-deflate (default True).
    * ``subprotocols``: subprotocols to pick from, in order of preference.
    * ``close_timeout``: how long to wait for the peer during the closing handshake.

    Requests that are not websocket upgrades get 400, as in eventlet.
    """

    def __init__(
        self,
        handler: Handler | None = None,
        *,
        max_message_size: int | None = 1 << 20,
        max_frame_length: int | None = None,
        ping_interval: float | None = 20.0,
        ping_timeout: float | None = 20.0,
        origins: Sequence[Any] | None = None,
        compression: bool = True,
        subprotocols: Sequence[str] | None = None,
        close_timeout: float = 5.0,
    ) -> None:
        if max_frame_length is not None:
            max_message_size = max_frame_length
        self.handler = handler
        self.max_message_size = max_message_size
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.origins = None if origins is None else list(origins)
        self.compression = compression
        self.subprotocols = None if subprotocols is None else list(subprotocols)
        self.close_timeout = close_timeout
        # Negotiation settings only (each connection gets extensions of its
        # own), so every connection shares them.
        self._extensions = enable_server_permessage_deflate(None) if compression else None
        if handler is not None:
            functools.update_wrapper(self, handler)  # type: ignore[arg-type]

    def _options(self) -> dict[str, Any]:
        return {
            "max_message_size": self.max_message_size,
            "ping_interval": self.ping_interval,
            "ping_timeout": self.ping_timeout,
            "origins": self.origins,
            "compression": self.compression,
            "subprotocols": self.subprotocols,
            "close_timeout": self.close_timeout,
        }

    def __call__(self, *args: Any) -> Any:
        """``app(environ, start_response)``; or, without a handler yet, ``deco(handler)``."""
        if len(args) == 1 and self.handler is None:
            return WebSocketWSGI(args[0], **self._options())
        if self.handler is None:
            raise TypeError("WebSocketWSGI has no handler: use it as a decorator first")
        environ, start_response = args
        return self._serve(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        assert self.handler is not None
        upgrade = environ.get("HTTP_UPGRADE", "")
        if "websocket" not in (token.strip().lower() for token in upgrade.split(",")):
            return plain_response(
                start_response, "400 Bad Request", "Expected a websocket upgrade.\n"
            )
        if environ.get("REQUEST_METHOD") != "GET":
            return plain_response(
                start_response, "405 Method Not Allowed", "Use GET.\n", [("Allow", "GET")]
            )
        if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
            return plain_response(
                start_response, "400 Bad Request", "A websocket upgrade needs HTTP/1.1.\n"
            )

        proto = ServerProtocol(
            origins=self.origins,
            extensions=self._extensions,
            subprotocols=self.subprotocols,
            max_size=self.max_message_size,
            logger=_proto_log,
        )
        response = proto.accept(Request(_request_path(environ), _request_headers(environ)))
        if response.status_code != 101:
            # A refusal (bad key, origin, subprotocol) is an ordinary HTTP response.
            headers = [
                (name, value)
                for name, value in response.headers.raw_items()
                if name.lower() not in ("connection", "date")  # the server's business
            ]
            start_response(f"{response.status_code} {response.reason_phrase}", headers)
            return [response.body]

        takeover = environ.get("nettools.takeover")
        if takeover is None:
            raise RuntimeError(
                "this WSGI server cannot hand over the connection for a websocket "
                "(no environ['nettools.takeover']); serve the app with nettools.web.wsgi"
            )
        sock, leftover = takeover()
        # Liveness is the keepalive's job now, not a read timeout's.
        sock.settimeout(None)
        # A 1xx response needs no Date (RFC 9110 6.6.1), and eventlet's 101 has none.
        del response.headers["Date"]
        proto.send_response(response)
        del response  # this frame lives as long as the connection: keep nothing spare
        # The request reached us through the WSGI server, not through the
        # protocol's own HTTP parser, which still waits for one: restart it now
        # that the state is OPEN, where it parses frames.
        proto.parser = proto.parse()
        next(proto.parser)
        serve_websocket(
            self.handler,
            sock,
            proto,
            environ,
            leftover,
            ping_interval=self.ping_interval,
            ping_timeout=self.ping_timeout,
            close_timeout=self.close_timeout,
        )
        return []

    def __repr__(self) -> str:
        return f"<WebSocketWSGI handler={self.handler!r}>"


def _request_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return raw
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    query = environ.get("QUERY_STRING")
    return f"{path}?{query}" if query else path or "/"


def _request_headers(environ: dict[str, Any]) -> Headers:
    """The request headers, back from WSGI's ``HTTP_*`` keys (names are case-insensitive)."""
    headers = Headers()
    for key, value in environ.items():
        if key.startswith("HTTP_"):
            headers[key[5:].replace("_", "-")] = value
    return headers
