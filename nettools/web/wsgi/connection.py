"""One WSGI connection: its requests handed to the application in order.

``WSGIConnection`` is the request-handling half: the environ, the call into the
application, its errors, posthooks, the takeover of the connection (for
websockets), and whether the connection goes on to the next request.  What it
sends comes from ``ResponseWriter``, the half it builds on.
"""

from __future__ import annotations

import logging
import sys
import time
import traceback
from collections.abc import Callable
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ...kernel.timeout import Timeout
from ..http import ClientDisconnected, HTTPError, ParseError, Request, error_response
from .body import EMPTY_INPUT, Input
from .environ import REQUEST_KEYS, UNIX_ADDR, raw_headers, request_environ, without_request
from .handoff import HANDOFF_KEYS, HandoffError, HandoffSocket
from .response import ResponseWriter, encode_text

if TYPE_CHECKING:
    from .wsgiserver import WSGIServer

__all__ = ["WSGIConnection", "HttpProtocol", "MINIMUM_CHUNK_SIZE"]

#: eventlet's ``minimum_chunk_size``, ``HttpProtocol``'s.
MINIMUM_CHUNK_SIZE = 4096

log = logging.getLogger("nettools.web.wsgi")

#: Parse errors that mean a limit was hit (URI, header or body too large).
_LIMIT_STATUSES = frozenset({413, 414, 431})

#: A released connection's environ: nothing (read-only, shared).
_NO_ENV: Any = MappingProxyType({})


class WSGIConnection(ResponseWriter):
    """Serves the requests of one connection to the WSGI application, in order.

    A server made with ``protocol=SubClass`` serves each connection with
    ``SubClass`` (eventlet's programs subclass ``HttpProtocol``), whose methods
    (``handle``, ``start_response``, ``send_head`` ...) it may extend, and whose
    class attributes, when not None, set for its connections
    ``capitalize_response_headers``, and ``minimum_chunk_size`` unless the
    server's options give one (eventlet's order).
    """

    minimum_chunk_size: int | None = None
    capitalize_response_headers: bool | None = None
    #: eventlet's escape hatch for legacy clients, off unless a subclass sets it
    #: False: a request with both Content-Length and Transfer-Encoding (a
    #: request smuggling vector, refused with 400 by default) is then read by
    #: its Transfer-Encoding, as RFC 9112 says, and its connection closed.
    reject_bad_requests: bool = True

    # Slots, as HttpConnection's: no dict per connection.
    __slots__ = (
        "wsgi_server",
        "app",
        "access_log",
        "on_request",
        "timed",
        "debug",
        "base_env",
        "in_app",
        "headers_raw",
    )

    def __init__(self, wsgi_server: WSGIServer, sock: Any, addr: Any) -> None:
        net_server = wsgi_server.server
        options = wsgi_server.options
        super().__init__(
            sock,
            wsgi_server.recv_buffer,
            wsgi_server.limits,
            wsgi_server.parser,
            net_server,
            options,
        )
        self.wsgi_server = wsgi_server
        self.app = wsgi_server.call_app
        self.access_log = wsgi_server.access_log
        self.on_request = options.on_request
        self.timed = self.access_log is not None or self.on_request is not None
        self.debug = options.debug
        self.headers_raw = options.headers_raw
        cls = type(self)
        if cls.minimum_chunk_size is not None and options.minimum_chunk_size is None:
            self.min_chunk = cls.minimum_chunk_size
        if cls.capitalize_response_headers is not None:
            self.capitalize = cls.capitalize_response_headers
        if not cls.reject_bad_requests:
            self.parser.set_dangerous_leniencies(lenient_chunked_length=True)
        env = wsgi_server.base_environ.copy()
        if isinstance(addr, tuple) and len(addr) >= 2:
            env["REMOTE_ADDR"] = sys.intern(addr[0])  # one string per client address
            env["REMOTE_PORT"] = str(addr[1])
        else:  # a unix-socket client
            env["REMOTE_ADDR"] = UNIX_ADDR
            env["REMOTE_PORT"] = ""
        env["nettools.takeover"] = self.takeover
        env["nettools.set_idle"] = self.set_idle
        env["nettools.on_stop"] = self.on_stop
        # Where libraries written for gunicorn and Werkzeug find the connection.
        handoff = HandoffSocket(self)
        for key in HANDOFF_KEYS:
            env[key] = handoff
        env.update(dict.fromkeys(REQUEST_KEYS))
        self.base_env = env
        self.in_app = False  # the application is being called (it may take over)

    def run(self) -> None:
        """Serve requests until the connection is to be closed (the caller closes it)."""
        try:
            while True:
                req = self.next_request()
                if req is None:
                    return
                if type(req) is ParseError:
                    self.ended = "limit" if req.status in _LIMIT_STATUSES else "error"
                    self.send_quietly(error_response(req.status, req.reason))
                    if self.timed:
                        env = without_request(self.base_env)
                        self._done(env, str(req.status), 0, 0, time.monotonic())
                    self.linger_close()
                    return
                if not self.handle(req):
                    return
        finally:
            if self.ended is not None and not self.net_server.stopping:
                self.net_server.end_reason(self.sock, self.ended)
            # The parser and the environ hold bound methods of this object: break
            # those cycles now rather than leave each connection to the collector.
            self.release()

    def handle(self, req: Request) -> bool:
        """Serve one request; True if the connection may go on to the next."""
        # Nothing sent yet: the response to ``req`` starts.
        self.req = req
        self.status = None
        self.headers_sent = self.continue_sent = self.chunked = self.keep = False
        self.body_sent = 0
        self.taken_over = False
        env = request_environ(self.base_env, req)
        if self.headers_raw:
            env["headers_raw"] = raw_headers(req)
        if not self.reject_bad_requests and _length_yields_to_transfer_encoding(req):
            env.pop("CONTENT_LENGTH", None)
        env["wsgi.input"] = EMPTY_INPUT if req.body_done and not req.body else Input(self, req)
        # One list under both names: eventlet's applications append to theirs.
        env["nettools.posthooks"] = env["eventlet.posthooks"] = []
        started = time.monotonic() if self.timed else 0.0
        result = None
        try:
            self.in_app = True
            try:
                result = self.app(env, self.start_response)
            finally:
                self.in_app = False
            if self.taken_over:
                self.keep = False
                self._discard(result)
            elif type(result) is list and len(result) == 1 and not self.headers_sent:
                body = result[0]  # the common case: the whole body in one piece
                if type(body) is str:
                    body = encode_text(body)
                self.send_head(len(body), body)
            else:
                # Iterating the result runs the application too: a generator
                # may take the connection over before its first piece.
                self.in_app = True
                try:
                    # eventlet's per-request override of minimum_chunk_size
                    self.send_result(result, env.get("eventlet.minimum_write_chunk_size"))
                finally:
                    self.in_app = False
        except (Exception, Timeout) as exc:
            # A Timeout out of the application is its failure (eventlet's too).
            self._app_failed(exc)
        finally:
            if type(result) is not list:
                self._close(result)
            if env["nettools.posthooks"] or env.get("eventlet.posthooks"):
                self._posthooks(env)
        if self.timed and not self.taken_over:
            if self.access_log is None:  # metrics alone: one call per request, not two
                self.on_request(env, self.status, req.body_received, self.body_sent, started)
            else:
                self._done(env, self.status, req.body_received, self.body_sent, started)
        if not self.keep:
            # What of the body arrived unread is dropped by net.Server before it
            # closes (drop_unread): the response is not lost to a reset.
            return False
        if not req.body_done:
            # The application left part of the body unread.  If the client
            # waits for "100 Continue" it may never send it: close.  Else drop it.
            if req.expect_continue and not self.continue_sent:
                return False
            return self.discard_body(req)
        return True

    def _done(
        self, env: dict, status: str | None, received: int, sent: int, started: float
    ) -> None:
        """The access log line and the ``on_request`` call of a finished request."""
        if self.access_log is not None:
            self.access_log(env, status, sent, started)
        if self.on_request is not None:
            self.on_request(env, status, received, sent, started)

    def release(self) -> None:
        super().release()
        self.base_env = _NO_ENV

    def _app_failed(self, exc: BaseException) -> None:
        """The application (or sending its response) raised ``exc``."""
        if self.taken_over:
            self.keep = False
            # A library written for gunicorn or Werkzeug ends a connection it took
            # over by raising StopIteration or ConnectionError: no error.
            if not isinstance(exc, (StopIteration, OSError)):
                log.error("error in a WSGI application after takeover", exc_info=exc)
        elif isinstance(exc, (ClientDisconnected, BrokenPipeError, ConnectionResetError)):
            self.keep = False  # the client left: nobody to answer
        elif isinstance(exc, TimeoutError):
            self._fail(408, None)  # the client stalled its body (or its reading)
        elif isinstance(exc, HTTPError):
            self._fail(exc.status, None)
        elif isinstance(exc, HandoffError):
            log.error("%s", exc)
            self._fail(500, None)
        else:
            self._fail(500, exc)

    def _fail(self, status: int, exc: BaseException | None) -> None:
        """The application failed: answer ``status`` if nothing was sent yet."""
        self.keep = False
        trace = None
        if exc is not None:
            log.error(
                "error in WSGI application (%s %s)",
                self.req.method,
                self.req.target.decode("latin-1"),
                exc_info=exc,
            )
            if self.access_log is not None or self.debug:
                trace = "".join(traceback.format_exception(exc))
            if self.access_log is not None:
                self.access_log.error(trace)  # as eventlet writes errors to its log
        if self.headers_sent:
            return  # mid-body: closing the connection is the only signal left
        self.status = f"{status} "
        self.send_quietly(error_response(status, body=trace if self.debug else None))
        if status in (400, 413):
            self.linger_close()  # the client may still be sending the body

    def _posthooks(self, env: dict) -> None:
        hooks = env["nettools.posthooks"]
        theirs = env.get("eventlet.posthooks")
        if theirs and theirs is not hooks:  # the application put a list of its own there
            hooks = [*hooks, *theirs]
        for hook in hooks:
            try:
                if isinstance(hook, tuple):
                    func, args, kwargs = hook
                    func(env, *args, **kwargs)
                else:
                    hook(env)
            except Exception:
                log.exception("error in a posthook")

    def _close(self, result: Any) -> None:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.exception("error closing a WSGI response")
                self.keep = False

    @staticmethod
    def _discard(result: Any) -> None:
        for _ in result:
            pass

    # ------------------------------------------------- for the application

    def takeover(self) -> tuple[Any, bytes]:
        """``environ['nettools.takeover']``: hand the raw connection to the
        application (see ``nettools.web.wsgi``); returns ``(sock, leftover)``."""
        if self.headers_sent:
            raise RuntimeError("cannot take over a connection whose response has started")
        if not self.in_app:
            raise RuntimeError("a connection can only be taken over while the application runs")
        self.taken_over = True
        leftover = self.leftover_after(self.req)
        # The connection is the application's now, for as long as it likes (a
        # websocket): no parser, pending request or request head of ours stays
        # alive with it (the environ has what the head said).
        self.release()
        self.req.headers = ()  # type: ignore[assignment]
        return self.sock, leftover

    def set_idle(self, idle: bool = True) -> None:
        """``environ['nettools.set_idle']``: idle or busy, for a graceful stop."""
        self.net_server.set_idle(self.sock, idle)

    def on_stop(self, closer: Callable[[], Any] | None) -> None:
        """``environ['nettools.on_stop']``: how a graceful stop closes this idle connection."""
        self.net_server.on_stop(self.sock, closer)


class HttpProtocol(WSGIConnection):
    """eventlet's ``wsgi.HttpProtocol``, which ``wsgi.server()`` serves with: a
    streamed body goes out in pieces of at least ``minimum_chunk_size`` bytes
    (eventlet's 4096) unless the server is given its own size or the
    application sets ``environ['eventlet.minimum_write_chunk_size']``."""

    __slots__ = ()
    minimum_chunk_size = MINIMUM_CHUNK_SIZE


def _length_yields_to_transfer_encoding(req: Request) -> bool:
    """Under ``reject_bad_requests = False``: a request that has both framings
    is read by Transfer-Encoding (the parser does so), its Content-Length is
    ignored, and the connection closes after the response (RFC 9112, 6.1).
    True if ``req`` is such a request."""
    if req.content_length is None or not any(
        name.lower() == b"transfer-encoding" for name, _ in req.headers
    ):
        return False
    req.content_length = None
    req.keep_alive = False
    return True
