"""The WSGI server: ``WSGIServer`` (an object to start and stop) and eventlet's ``server()``."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from types import FunctionType, MethodType
from typing import Any

from ...net import Server, format_address, listen
from ..http import RECV_SIZE
from .connection import MINIMUM_CHUNK_SIZE, HttpProtocol, WSGIConnection
from .environ import server_environ
from .options import WSGIOptions

__all__ = ["WSGIServer", "server", "MINIMUM_CHUNK_SIZE"]

log = logging.getLogger("nettools.web.wsgi")

#: eventlet's ``wsgi.server`` parameters after ``sock`` and ``site``, in its order,
#: so that positional calls carry over.
SERVER_POSITIONAL = (
    "log", "environ", "max_size", "max_http_version", "protocol", "server_event",
    "minimum_chunk_size", "log_x_forwarded_for", "custom_pool", "keepalive", "log_output",
    "log_format", "url_length_limit", "debug", "socket_timeout", "capitalize_response_headers",
)  # fmt: skip


class WSGIServer:
    """A WSGI server on ``sock`` (a listening socket, or an address to listen on).

    Options come as a ``WSGIOptions``, as keywords (its field names: ``log``,
    ``max_size``, ``keepalive``, ``max_body_size``, ...), or both (the keywords
    win); ``WSGIOptions`` lists them with their defaults.
    """

    def __init__(
        self, sock: Any, app: Callable, options: WSGIOptions | None = None, **kwargs: Any
    ) -> None:
        self.options = opts = WSGIOptions.build(options, kwargs)
        if not hasattr(sock, "accept"):
            sock = listen(sock)
        self.app = app
        # A Socket.IO app's websockets on nettools' own.  Imported here: engineio_ws
        # builds on web.websocket, which imports this package.
        from ..engineio_ws import adopt_engineio

        adopt_engineio()
        #: ``app`` as the connections call it (see ``direct_call``).
        self.call_app = direct_call(app)
        self.limits = opts.limits()
        self.parser = opts.parser_factory()
        self.access_log = opts.access_log()
        self.protocol = opts.protocol or WSGIConnection
        #: One receive buffer for every connection: see nettools.web.http.
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        self.server = Server(
            sock,
            self._handle,
            opts.max_size or 1024,
            pool=opts.custom_pool,
            ssl_context=opts.ssl_context,
            name=opts.name,
        )
        scheme = "https" if self.server.ssl_context is not None else "http"
        self.base_environ = server_environ(sock, scheme, self, opts.environ)

    def _handle(self, sock: Any, addr: Any) -> None:
        self.protocol(self, sock, addr).run()

    # ------------------------------------------------------------ control

    @property
    def address(self) -> Any:
        """The listening address (useful after binding port 0)."""
        return self.server.address

    @property
    def socket(self) -> Any:
        """The listening socket."""
        return self.server.socket

    def start(self) -> WSGIServer:
        """Start accepting in a background greenthread; returns self."""
        self.server.start()
        return self

    def serve_forever(self) -> None:
        """Serve until stopped (or closed)."""
        self.server.serve_forever()

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle keep-alive connections, let in-flight requests
        finish (answered with ``Connection: close``) for up to ``timeout`` seconds,
        then kill what is left."""
        self.server.stop(timeout)

    def close(self) -> None:
        """Stop accepting; connections carry on."""
        self.server.close()

    def install_signal_handlers(self, drain_timeout: float | None = 30.0) -> None:
        """SIGINT and SIGTERM stop the server gracefully (main thread only)."""
        self.server.install_signal_handlers(drain_timeout)


def direct_call(app: Callable) -> Callable:
    """``app``, or for an instance of a class with a Python ``__call__`` (a Flask
    app, ``WebSocketWSGI``) that method bound to it: the same call, which CPython
    runs in the caller's eval loop instead of a nested C-level one -- whose C
    stack a greenthread parked in the app (a websocket) keeps a copy of."""
    if isinstance(app, FunctionType):
        return app
    for klass in type(app).__mro__:
        call = vars(klass).get("__call__")
        if call is not None:
            return MethodType(call, app) if isinstance(call, FunctionType) else app
    return app


def server(
    sock: Any,
    site: Callable,
    *args: Any,
    options: WSGIOptions | None = None,
    handle_signals: bool = False,
    drain_timeout: float | None = 30.0,
    **kwargs: Any,
) -> None:
    """Serve the WSGI application ``site`` on the listening socket ``sock``; blocks.

    Takes eventlet's ``wsgi.server`` arguments, positionally in its order
    (``log``, ``environ``, ``max_size``, ...: ``SERVER_POSITIONAL``) or as
    keywords, and any other ``WSGIOptions`` field as a keyword (or ``options``).
    As in eventlet, header names go out Capitalized-Like-This unless
    ``capitalize_response_headers=False``, connections are served by
    ``HttpProtocol`` (or the ``protocol`` given), and a streamed body goes out
    in pieces of at least ``minimum_chunk_size`` (the protocol's: 4096) unless
    the application sets ``environ['eventlet.minimum_write_chunk_size']`` (0
    for a stream whose every piece must go at once), and each environ has
    ``headers_raw`` (see ``WSGIOptions``).  ``server_event``, if
    given, receives the ``WSGIServer`` (``server_event.send(srv)``) once it
    is listening; ``log`` gets eventlet's "wsgi starting up on URL" line
    first and "wsgi exited" last (unless ``log_output=False``); ``protocol``
    is a subclass of ``HttpProtocol`` serving each connection.  With
    ``handle_signals`` SIGINT and SIGTERM stop it gracefully; Ctrl-C
    (KeyboardInterrupt) does too.  Either way in-flight requests get up to
    ``drain_timeout`` seconds, then the function returns.  Killing the
    greenthread that runs it stops it the same way before the kill goes on.
    """
    if len(args) > len(SERVER_POSITIONAL):
        raise TypeError(
            f"server() takes at most {2 + len(SERVER_POSITIONAL)} positional arguments "
            f"({2 + len(args)} given)"
        )
    for name, value in zip(SERVER_POSITIONAL, args, strict=False):
        if name in kwargs:
            raise TypeError(f"server() got multiple values for argument {name!r}")
        kwargs[name] = value
    if options is None:
        # eventlet's default; WSGIServer keeps the application's case.
        kwargs.setdefault("capitalize_response_headers", True)
        if kwargs.get("protocol") is None:
            kwargs["protocol"] = HttpProtocol  # its minimum_chunk_size: MINIMUM_CHUNK_SIZE
        kwargs.setdefault("headers_raw", True)
    server_event = kwargs.pop("server_event", None)
    srv = WSGIServer(sock, site, options, **kwargs)
    if handle_signals:
        srv.install_signal_handlers(drain_timeout)
    srv.start()
    announce = srv.access_log.note if srv.access_log is not None else None
    if announce is not None:
        announce(f"({os.getpid()}) wsgi starting up on {listen_url(srv)}")
    if server_event is not None:
        server_event.send(srv)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        log.info("wsgi: interrupted, stopping")
        srv.stop(drain_timeout)
    except BaseException:
        # As eventlet's server does when its greenthread is killed (or anything
        # else ends it): idle keep-alive connections are closed and requests in
        # flight finish -- here within drain_timeout -- before the exit goes on.
        srv.stop(drain_timeout)
        raise
    finally:
        if announce is not None:
            announce(f"({os.getpid()}) wsgi exited")


def listen_url(srv: WSGIServer) -> str:
    """Where ``srv`` listens, as eventlet's server says it: ``http://host:port``,
    ``http://[v6]:port`` or ``http:/path`` (``https`` with TLS)."""
    scheme = "https" if srv.server.ssl_context is not None else "http"
    where = format_address(srv.address)
    if where.startswith("unix:"):
        return f"{scheme}:{where[5:]}"
    return f"{scheme}://{where}"
