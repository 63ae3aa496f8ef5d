"""The websocket opening handshake, served as a WSGI application: ``WebSocketWSGI``.

It checks the upgrade request, lets the protocol object (``websockets``'
Sans-I/O ``ServerProtocol``) accept or refuse it -- a refusal is an ordinary
HTTP response -- then takes the connection over from the WSGI server and hands
it to ``serve_websocket`` with the handler.
"""

from __future__ import annotations

import errno
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
from .connection import Handler
from .hixie import KEY3_SIZE, HixieRefused, HixieWebSocket, hixie_reply, hixie_version
from .serving import serve_websocket

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
log = logging.getLogger("nettools.websocket")


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
    * ``drafts``: serve a client that sends no ``Sec-WebSocket-Version`` the 2010
      draft it speaks, hixie-75 or hixie-76, as eventlet does (see ``hixie``);
      its handler then gets a ``HixieWebSocket`` and its errors propagate.  Off
      by default (no browser has spoken the drafts since 2011, and they lack
      RFC 6455's masking); ``eventlet.websocket.WebSocketWSGI`` turns it on.

    Requests that are not websocket upgrades get 400 (``Connection: close``, no
    body), as in eventlet; so do invalid ones, the reason going to the log.
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
        drafts: bool = False,
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
        self.drafts = drafts
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
            "drafts": self.drafts,
        }

    def __call__(self, *args: Any) -> Any:
        """``app(environ, start_response)``; or, without a handler yet, ``deco(handler)``."""
        if len(args) == 1 and self.handler is None:
            return type(self)(args[0], **self._options())
        if self.handler is None:
            raise TypeError("WebSocketWSGI has no handler: use it as a decorator first")
        environ, start_response = args
        return self._serve(environ, start_response)

    def _serve(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        assert self.handler is not None
        if not (
            "upgrade" in _tokens(environ.get("HTTP_CONNECTION", ""))
            and "websocket" in _tokens(environ.get("HTTP_UPGRADE", ""))
        ):
            return _refuse(start_response, "400 Bad Request")  # as eventlet answers
        if environ.get("REQUEST_METHOD") != "GET":
            return plain_response(
                start_response, "405 Method Not Allowed", "Use GET.\n", [("Allow", "GET")]
            )
        if environ.get("SERVER_PROTOCOL") != "HTTP/1.1":
            return plain_response(
                start_response, "400 Bad Request", "A websocket upgrade needs HTTP/1.1.\n"
            )
        if (
            self.drafts
            and "HTTP_SEC_WEBSOCKET_VERSION" not in environ
            and "HTTP_SEC_WEBSOCKET_KEY" not in environ
        ):
            return self._serve_hixie(environ, start_response)

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
            # The reason went to the log; like eventlet, the answer has no body.
            headers = [
                (name, value)
                for name, value in response.headers.raw_items()
                if name.lower() not in _REFUSAL_DROPPED  # the server's business
            ]
            status = f"{response.status_code} {response.reason_phrase}"
            return _refuse(start_response, status, headers)

        sock, leftover = self._take_over(environ)
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

    def _serve_hixie(self, environ: dict[str, Any], start_response: Callable) -> Iterable[bytes]:
        """An old client's upgrade (no ``Sec-WebSocket-Version``): the draft
        protocols eventlet still speaks (see ``hixie``).  The handler's errors
        propagate, as eventlet lets them."""
        assert self.handler is not None
        version = hixie_version(environ)
        origin_ok = self.origins is None or environ.get("HTTP_ORIGIN") in self.origins
        if not origin_ok:
            return _refuse(start_response, "403 Forbidden")
        try:
            hixie_reply(environ, version, b"\0" * KEY3_SIZE)  # refuse before taking over
        except HixieRefused as exc:
            _proto_log.info("draft websocket handshake refused: %s", exc)
            return _refuse(start_response, "400 Bad Request")
        sock, leftover = self._take_over(environ)
        try:
            if version == 76:
                while len(leftover) < KEY3_SIZE:
                    data = sock.recv(KEY3_SIZE - len(leftover))
                    if not data:
                        return []
                    leftover += data
            key3, leftover = leftover[:KEY3_SIZE], leftover[KEY3_SIZE:]
            sock.sendall(hixie_reply(environ, version, key3 if version == 76 else b""))
        except (OSError, HixieRefused):
            return []
        ws = HixieWebSocket(sock, environ, version, max_message_size=self.max_message_size)
        ws._buf = leftover
        on_stop = environ.get("nettools.on_stop")
        if on_stop is not None:
            on_stop(lambda: ws.going_away(self.close_timeout))
        try:
            self.handler(ws)
        except OSError as exc:
            if exc.errno not in _PEER_GONE:
                raise
            log.debug("draft websocket %s: peer gone: %s", ws.path, exc)
        finally:
            if on_stop is not None:
                on_stop(None)
            ws.send_closing_frame()
        return []

    @staticmethod
    def _take_over(environ: dict[str, Any]) -> tuple[Any, bytes]:
        takeover = environ.get("nettools.takeover")
        if takeover is None:
            raise RuntimeError(
                "this WSGI server cannot hand over the connection for a websocket "
                "(no environ['nettools.takeover']); serve the app with nettools.web.wsgi"
            )
        sock, leftover = takeover()
        # Liveness is the protocol's business now, not a read timeout's.
        sock.settimeout(None)
        return sock, leftover

    def __repr__(self) -> str:
        return f"<WebSocketWSGI handler={self.handler!r}>"


#: A handler's socket errors that only mean the peer left (not the handler's fault).
_PEER_GONE = (errno.ECONNRESET, errno.EPIPE, errno.ESHUTDOWN)

#: Headers of the protocol library's refusal that the server writes itself.
_REFUSAL_DROPPED = ("connection", "date", "content-length", "content-type")


def _tokens(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",")]


def _refuse(
    start_response: Callable, status: str, headers: list[tuple[str, str]] | None = None
) -> list[bytes]:
    """Refuse an upgrade as eventlet does: ``status``, ``Connection: close``, no body."""
    start_response(status, [("Connection", "close"), *(headers or [])])
    return []


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
            if key == "HTTP_SEC_WEBSOCKET_EXTENSIONS":
                value = _plain_extensions(value)
            headers[key[5:].replace("_", "-")] = value
    return headers


def _plain_extensions(value: str) -> str:
    """An extension offer as the protocol library reads it: names and
    parameters in lower case (they are tokens, matched without regard to case,
    as eventlet and browsers do) and no spaces around ``=``."""
    offers = []
    for offer in value.split(","):
        params = []
        for param in offer.split(";"):
            name, eq, val = param.partition("=")
            params.append(name.strip().lower() + (eq + val.strip().lower() if eq else ""))
        offers.append("; ".join(params))
    return ", ".join(offers)
