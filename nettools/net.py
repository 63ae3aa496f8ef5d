"""The one accept loop every nettools server shares, and TLS wrapping (``listen``,
``connect`` and the other socket helpers come from ``nettools.sockets``).

``Server`` accepts connections on a listening socket and runs ``handle(conn,
addr)`` for each in a ``GreenPool``:

* it waits for a free pool slot *before* accepting, so when the pool is full
  new connections wait in the kernel's backlog, and accepting resumes by
  itself as handlers finish;
* EMFILE/ENFILE/ENOBUFS/ENOMEM on accept (out of fds or memory) back off with
  a growing delay instead of spinning or dying;
* the connection is closed in a ``finally`` whatever the handler does;
* accepted TCP sockets get ``TCP_NODELAY`` (request/response protocols would
  otherwise wait on Nagle's algorithm);
* ``stop(timeout)`` closes the listener, shuts idle connections down at once
  (or ends them the handler's own way, see ``on_stop``), lets busy handlers
  finish for up to ``timeout`` seconds, then kills the rest;
* TLS is safe by construction (``tlsguard``): TLS 1.2 at least, no
  renegotiation, each handshake bounded in time, and the handshakes in
  progress bounded in number, before the connection takes a place in the pool.

Its plain counters (``accepted``, ``active``, ``closed`` and ``refused`` by
reason, ``errors``, ``tls_failures``, ``accept_errors``, ``limit_reached``) are
what ``nettools.tools.plumbing.metrics`` reads when scraped.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import ssl as _stdlib_ssl
import sys
import weakref
from collections.abc import Callable
from typing import Any

from greenlet import GreenletExit

from .address import Address, format_address, is_abstract_unix, parse_address
from .green import socket
from .green import ssl as _gssl
from .kernel.greenthread import GreenThread, current_greenthread, kill, sleep, spawn
from .kernel.hub import get_hub
from .kernel.pool import GreenPool
from .kernel.sync import Event
from .kernel.timeout import Timeout
from .sockets import (
    UNREAD_LIMIT,
    ReuseRandomPortWarning,
    bind_udp,
    connect,
    drop_unread,
    is_listening,
    listen,
    shutdown_quietly,
)
from .tlsguard import HandshakeGate, harden_server_context

__all__ = [
    "listen",
    "bind_udp",
    "connect",
    "wrap_ssl",
    "server_context",
    "green_context",
    "accept_tls",
    "serve",
    "StopServe",
    "ReuseRandomPortWarning",
    "Server",
    "live_servers",
    "shutdown_quietly",
    "drop_unread",
    "UNREAD_LIMIT",
    "call_on_stop_signals",
    "ACCEPT_INHERITS_OPTIONS",
    "Address",
    "is_abstract_unix",
    "parse_address",
    "format_address",
]

log = logging.getLogger("nettools.server")

#: accept() errors that mean "out of resources right now": back off and retry.
ACCEPT_CAPACITY_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
#: accept() errors about one connection that died in the backlog: just go on.
ACCEPT_TRANSIENT_ERRNOS = frozenset(
    {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN, errno.EHOSTUNREACH}
)
#: Whether an accepted TCP socket starts with its listener's options (Linux
#: copies TCP_NODELAY and the keepalive settings): set once on the listener,
#: they cost no call per connection.
ACCEPT_INHERITS_OPTIONS = sys.platform.startswith("linux")


class StopServe(Exception):
    """Raise in a ``serve`` handler to make ``serve`` return."""


def wrap_ssl(
    sock: socket.socket,
    certfile: str | None = None,
    keyfile: str | None = None,
    server_side: bool = False,
    ca_certs: str | None = None,
    server_hostname: str | None = None,
    context: Any = None,
    **kw: Any,
) -> Any:
    """Wrap ``sock`` in green TLS.

    Pass an ``ssl.SSLContext`` as ``context``, or let one be made: a server
    context from ``certfile``/``keyfile``, or a verifying client context
    (trusting ``ca_certs`` if given, else the system's CAs).
    """
    if context is None:
        if server_side:
            context = _gssl.SSLContext(_gssl.PROTOCOL_TLS_SERVER)
        else:
            context = _gssl.create_default_context(cafile=ca_certs)
        if certfile:
            context.load_cert_chain(certfile, keyfile)
    else:
        context = green_context(context)
    return context.wrap_socket(sock, server_side=server_side, server_hostname=server_hostname, **kw)


def green_context(ctx: Any) -> Any:
    """``ctx`` made to wrap green sockets: a plain ``ssl.SSLContext`` would make
    blocking ones, so it becomes its green twin (in place: same certificates
    and settings)."""
    if type(ctx) is _stdlib_ssl.SSLContext:
        ctx.__class__ = _gssl.SSLContext
    return ctx


def server_context(certfile: str, keyfile: str | None = None) -> Any:
    """A green server TLS context for a certificate chain (and key, if not in
    the same file), held to nettools' TLS policy (``tlsguard``: TLS 1.2 at
    least, no renegotiation); raises ``OSError`` or ``ssl.SSLError`` if they
    do not load."""
    ctx = _gssl.SSLContext(_gssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(certfile, keyfile)
    return harden_server_context(ctx)


def accept_tls(
    conn: Any, context: Any, timeout: float | None, gate: HandshakeGate | None = None
) -> Any:
    """Server-side TLS on an accepted connection: wrap ``conn`` in ``context``
    (a green one, held to the policy of ``tlsguard``) and run the handshake
    within ``timeout`` seconds; the TLS socket then gets ``conn``'s own timeout
    back.  If the client fails it (hangs up, resets, speaks plain text,
    stalls) the connection is closed and the ``OSError`` or ``ValueError``
    raised.  With a ``gate`` the handshake first waits for its turn there (a
    stalled one may be cut for it), and counts as one in progress.

    ``Server`` does this for its handlers when given an ``ssl_context``; a
    handler that must look at the client before any TLS calls it itself.
    """
    harden_server_context(context)
    if gate is None:
        return _handshake(conn, context, timeout)
    with gate.tracking(conn.fileno()):
        return _handshake(conn, context, timeout)


def _handshake(conn: Any, context: Any, timeout: float | None) -> Any:
    timeout_after = conn.gettimeout()
    try:
        tls = context.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    except BaseException:
        conn.close()
        raise
    try:
        tls.settimeout(timeout)
        tls.do_handshake()
        tls.settimeout(timeout_after)
    except BaseException:
        tls.close()
        raise
    return tls


#: Every Server made and not yet garbage, for whoever reports on them all.
_servers: weakref.WeakSet = weakref.WeakSet()


def live_servers() -> list[Server]:
    """The ``Server`` objects of this process that still exist (running or not)."""
    return list(_servers)


class Server:
    """Accept connections on ``sock`` and run ``handle(conn, addr)`` for each.

    ``concurrency`` bounds simultaneous handlers (or pass your own ``pool``).
    Errors in handlers are logged and the server lives on, unless
    ``raise_errors`` is set (then the first one closes the server and is raised
    by ``serve_forever``).  Handlers may call ``set_idle(conn, True)`` while
    they wait between requests so a graceful stop can close them at once.

    TLS: pass ``ssl_context`` (or a listener already wrapped with ``wrap_ssl``);
    it is held to the policy of ``tlsguard`` (TLS 1.2 at least, no
    renegotiation).  Each handshake runs in a greenthread of its own, bounded
    by ``handshake_timeout``, before the connection takes a place in the pool;
    at most ``max_handshakes`` run at once (``handshakes``, a
    ``HandshakeGate``: past that, accepting waits, and a handshake stalled for
    ``handshake_stall`` seconds is cut to make room).  So clients that never
    finish one delay nobody, and hold no handler's place.
    """

    #: Backoff bounds after accept() ran out of fds or memory.
    min_backoff = 0.01
    max_backoff = 1.0

    def __init__(
        self,
        sock: socket.socket,
        handle: Callable[[Any, Any], Any],
        concurrency: int = 1000,
        *,
        pool: GreenPool | None = None,
        nodelay: bool = True,
        raise_errors: bool = False,
        ssl_context: Any = None,
        handshake_timeout: float | None = 10.0,
        max_handshakes: int = 256,
        handshake_stall: float = 1.0,
        name: str = "server",
    ) -> None:
        if ssl_context is None and isinstance(sock, _stdlib_ssl.SSLSocket):
            ssl_context = sock.context
        self.socket = sock
        self.handle = handle
        self.pool = pool if pool is not None else GreenPool(concurrency)
        self.nodelay = nodelay and sock.family in (socket.AF_INET, socket.AF_INET6)
        #: Whether each accepted socket needs its own TCP_NODELAY call.
        self._nodelay_each = self.nodelay
        if self.nodelay and ACCEPT_INHERITS_OPTIONS:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self._nodelay_each = False
            except OSError:
                pass  # then per connection, as elsewhere
        self.raise_errors = raise_errors
        self.ssl_context = None
        self.handshakes: HandshakeGate | None = None
        if ssl_context is not None:
            self.ssl_context = harden_server_context(green_context(ssl_context))
            self.handshakes = HandshakeGate(max_handshakes, handshake_stall)
        self.handshake_timeout = handshake_timeout
        #: Greenthreads running a TLS handshake (outside the pool).
        self._handshaking: set[GreenThread] = set()
        self.name = name
        #: Open connections -> True while the handler says it is idle.
        self.connections: dict[Any, bool] = {}
        #: Connections that a graceful stop ends by calling their closer.
        self._closers: dict[Any, Callable[[], Any]] = {}
        self.accepted = 0
        self.errors = 0
        #: Ended connections by why: ``client``, ``error`` (the handler raised, or
        #: TLS failed), ``stopped``, or the handler's ``end_reason``; refused ones.
        self.closed: dict[str, int] = {}
        self.refused: dict[str, int] = {}
        self.tls_failures = 0
        self.accept_errors: dict[str, int] = {}  # by errno name
        #: Times the pool was full, so new connections waited in the listen backlog.
        self.limit_reached = 0
        self._reasons: dict[Any, str] = {}  # connections whose handler said why they end
        _servers.add(self)
        self._acceptor: GreenThread | None = None
        self._closing = False
        self._closed = Event()  # no longer accepting
        #: True from the moment ``stop`` is called (protocols then close keep-alive;
        #: a plain attribute: they ask on every response).
        self.stopping = False
        self._stopped = Event()  # stop() has finished
        self._failure: BaseException | None = None
        # One bound method for every connection's greenthread, which holds it for
        # as long as the connection lasts (not one made per accept).
        self._serve = self._serve_one

    @property
    def address(self) -> Any:
        """The listening address (useful after binding port 0)."""
        return self.socket.getsockname()

    @property
    def active(self) -> int:
        """Connections open right now."""
        return len(self.connections)

    @property
    def max_conns(self) -> int:
        """Most connections served at once (the pool's size, maybe shared)."""
        return self.pool.size

    def end_reason(self, conn: Any, reason: str) -> None:
        """Say why ``conn`` ends (``idle``, ``slow``, ``limit``, ...), to be counted in
        ``closed`` when its handler returns; the last word wins."""
        if conn in self.connections:
            self._reasons[conn] = reason

    def refuse(self, conn: Any, reason: str) -> None:
        """Count ``conn`` as refused (``denied``, ...) rather than closed."""
        self.end_reason(conn, "refused:" + reason)

    # ----------------------------------------------------------- running

    def start(self) -> Server:
        """Start accepting in a background greenthread; returns self.

        A socket that is not listening is refused here with accept's own
        ``EINVAL`` (later, EINVAL means the program closed or shut the listener
        down, and stops the server quietly)."""
        if self._acceptor is None:
            if not self._closing and not is_listening(self.socket):
                raise OSError(
                    errno.EINVAL,
                    f"{os.strerror(errno.EINVAL)}: the socket is not listening "
                    "(call listen() on it first)",
                )
            self._acceptor = spawn(self._accept_loop)
        return self

    def serve_forever(self) -> None:
        """Start (if needed) and wait until the server stops accepting -- and, when
        ``stop`` is what ended it, until its handlers have drained.

        If the waiting greenthread is killed (or a ``Timeout`` or Ctrl-C ends
        the wait), the server stops accepting, as a plain accept loop in that
        greenthread would; connections being served carry on.
        """
        self.start()
        try:
            self._closed.wait()
            if self.stopping:
                self._stopped.wait()
        except BaseException:
            self.close()
            raise
        if self._failure is not None:
            raise self._failure

    def _accept_loop(self) -> None:
        sock = self.socket
        # On a TLS listener take the plain connection; the handshake runs in
        # the handler's greenthread (see _serve_one), never in this loop.
        accept = socket.socket.accept.__get__(sock)
        pool = self.pool
        gate = self.handshakes
        backoff = self.min_backoff
        try:
            while not self._closing:
                if pool.free() <= 0:
                    # Full: leave new connections in the backlog until a slot frees.
                    self.limit_reached += 1
                    pool.sem.acquire()
                    pool.sem.release()
                    continue
                if gate is not None and len(gate) >= gate.limit:
                    gate.admit()  # as many handshakes as we take: wait, or cut a stalled one
                    continue
                try:
                    conn, addr = accept()
                except OSError as exc:
                    if self._closing:
                        return
                    if exc.errno in (errno.EBADF, errno.EINVAL):
                        # The program closed (or shut down) the listener behind our
                        # back: it means "stop serving".  As eventlet's server does,
                        # idle keep-alive connections close now and requests in
                        # flight finish (their responses end their connections).
                        log.info("%s: listening socket closed; stopping", self.name)
                        spawn(self.stop)
                        return
                    if exc.errno in ACCEPT_CAPACITY_ERRNOS or exc.errno in ACCEPT_TRANSIENT_ERRNOS:
                        name = errno.errorcode.get(exc.errno, str(exc.errno)).lower()
                        self.accept_errors[name] = self.accept_errors.get(name, 0) + 1
                    if exc.errno in ACCEPT_CAPACITY_ERRNOS:
                        log.warning(
                            "%s: accept failed (%s); retrying in %.2fs",
                            self.name,
                            exc.strerror or exc,
                            backoff,
                        )
                        sleep(backoff)
                        backoff = min(backoff * 2, self.max_backoff)
                        continue
                    if exc.errno in ACCEPT_TRANSIENT_ERRNOS:
                        continue
                    raise
                backoff = self.min_backoff
                self.accepted += 1
                if self._nodelay_each:
                    try:
                        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    except OSError:
                        pass  # the peer may already have reset it
                self.connections[conn] = False
                if gate is None:
                    pool.spawn(self._serve, conn, addr)
                else:
                    gate.add(conn.fileno())
                    self._handshaking.add(spawn(self._handshake_then_serve, conn, addr))
        except GreenletExit:
            pass
        except BaseException as exc:
            if not self._closing:
                log.exception("%s: accept loop failed", self.name)
                self._fail(exc)

    def _handshake_then_serve(self, conn: Any, addr: Any) -> None:
        """TLS first, outside the pool; then the handler, in the pool."""
        me = current_greenthread()
        fd = conn.fileno()
        tls = None
        try:
            try:
                tls = self._handshake(conn, addr)
            finally:
                self.handshakes.discard(fd)
                self.connections.pop(conn, None)
            if tls is None:
                self._count_end("error")
                return
            if self._closing:
                return
            self.connections[tls] = False
            self.pool.spawn(self._serve, tls, addr)  # may wait for a place
            tls = None  # the handler's now
        except GreenletExit:
            pass  # a stop: a handshake is no request in flight
        finally:
            self._handshaking.discard(me)
            if tls is not None:
                self.connections.pop(tls, None)
                tls.close()

    def _serve_one(self, conn: Any, addr: Any) -> None:
        ended = "client"
        try:
            self.handle(conn, addr)
        except StopServe:
            spawn(self.close)
        except GreenletExit:
            ended = "stopped"
        except Exception as exc:
            ended = "error"
            self.errors += 1
            if self.raise_errors:
                self._fail(exc)
            else:
                log.exception("%s: error handling %s", self.name, format_address(addr))
        finally:
            self.connections.pop(conn, None)
            self._closers.pop(conn, None)
            if self._reasons:
                ended = self._reasons.pop(conn, ended)
            self._count_end(ended)
            # A handler may end without reading all the client sent (and a
            # kill does): its last reply must not be lost to a reset.
            drop_unread(conn)
            try:
                conn.close()
            except OSError:
                pass

    def _count_end(self, ended: str) -> None:
        if ended.startswith("refused:"):
            counts, ended = self.refused, ended[8:]
        else:
            counts = self.closed
        counts[ended] = counts.get(ended, 0) + 1

    def _handshake(self, conn: Any, addr: Any) -> Any:
        """Wrap ``conn`` in TLS; None (and the socket closed) if the client fails it."""
        try:
            return accept_tls(conn, self.ssl_context, self.handshake_timeout)
        except (OSError, ValueError) as exc:
            # The client hung up, reset, spoke plain text or stalled: its problem.
            self.tls_failures += 1
            log.debug(
                "%s: TLS handshake with %s failed: %s", self.name, format_address(addr), exc
            )
            return None

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        spawn(self.close)

    # ----------------------------------------------------------- stopping

    def set_idle(self, conn: Any, idle: bool = True) -> None:
        """Mark ``conn`` idle (waiting for a new request) or busy; see ``stop``."""
        if conn in self.connections:
            self.connections[conn] = idle
            if idle and self.stopping:
                self._end_idle(conn)

    def on_stop(self, conn: Any, closer: Callable[[], Any] | None) -> None:
        """Have a graceful stop end ``conn``, once it is idle, by running
        ``closer()`` in a greenthread of its own instead of shutting the socket
        down -- say, to send a websocket close frame first.  The closer must
        bound its own waits.  None goes back to the plain shutdown."""
        if closer is None:
            self._closers.pop(conn, None)
        elif conn in self.connections:
            self._closers[conn] = closer

    def _end_idle(self, conn: Any) -> None:
        self._reasons.setdefault(conn, "stopped")
        closer = self._closers.pop(conn, None)
        if closer is None:
            shutdown_quietly(conn)
        else:
            spawn(closer)

    def close(self) -> None:
        """Stop accepting; running handlers carry on (``serve`` returns)."""
        if self._closing:
            return
        self._closing = True
        try:
            self.socket.close()  # wakes the acceptor with an error
        finally:
            self._closed.send(None)

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, close idle connections, wait up to ``timeout`` for busy
        handlers, then kill what is left.  Safe to call more than once."""
        if self.stopping:
            self._stopped.wait()
            return
        self.stopping = True
        try:
            self.close()
            for gt in list(self._handshaking):
                kill(gt)  # a handshake is no request in flight
            for conn, idle in list(self.connections.items()):
                if idle:
                    self._end_idle(conn)
            if timeout is None or timeout > 0:
                with Timeout(timeout, False):
                    self.pool.waitall()
            for gt in list(self.pool.coroutines_running):
                kill(gt)
            with Timeout(1.0, False):
                self.pool.waitall()
            if self._acceptor is not None:
                kill(self._acceptor)
        finally:
            if not self._stopped.ready():
                self._stopped.send(None)

    @property
    def stopped(self) -> bool:
        """True once ``stop`` has finished."""
        return self._stopped.ready()

    def install_signal_handlers(
        self, drain_timeout: float | None = 30.0, signals: tuple = (signal.SIGINT, signal.SIGTERM)
    ) -> None:
        """Make SIGINT/SIGTERM stop the server gracefully (main thread only)."""
        call_on_stop_signals(lambda: self.stop(drain_timeout), signals, name=self.name)


def call_on_stop_signals(
    stop: Callable[[], Any],
    signals: tuple = (signal.SIGINT, signal.SIGTERM),
    *,
    name: str | None = None,
) -> dict[int, Any]:
    """Make ``signals`` (SIGINT and SIGTERM) run ``stop()`` in a greenthread of its
    own (main thread only); returns the handlers they had, to put back.  With a
    ``name``, each signal is logged as ``NAME: signal N received, stopping``."""
    hub = get_hub()

    def on_signal(signum: int, frame: Any) -> None:
        if name is not None:
            log.info("%s: signal %d received, stopping", name, signum)
        hub.run_callback_threadsafe(lambda: spawn(stop))

    old = {sig: signal.signal(sig, on_signal) for sig in signals}
    hub.wake_on_signals()
    return old


def serve(sock: socket.socket, handle: Callable[[Any, Any], Any], concurrency: int = 1000) -> None:
    """Run ``handle(conn, addr)`` for every connection on ``sock`` until a handler
    raises ``StopServe`` (then return) or another exception (then re-raise it, as
    eventlet does); other handlers run on either way.  Returning from ``handle``
    closes ``conn``."""
    Server(sock, handle, concurrency, raise_errors=True, name="serve").serve_forever()
