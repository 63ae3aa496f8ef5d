"""A drop-in green ``ssl`` module.

``SSLSocket`` here sits between the standard ``ssl.SSLSocket`` and the green
socket in the class hierarchy: the standard class supplies all of TLS, the
green socket supplies non-blocking plain I/O.  With the OS-level socket
non-blocking, OpenSSL answers "want read"/"want write" instead of blocking;
each TLS operation is then retried after the hub reports the fd ready.  TLS
data OpenSSL has already decrypted (``pending()``) is returned by the first
try, before any wait -- waiting on the fd first would hang on it.

Monkey-patching does not replace ``ssl.SSLContext`` (contexts created before
patching, or by modules that imported the class early, would escape); it
points ``ssl.SSLContext.sslsocket_class`` at the green ``SSLSocket``, so every
``wrap_socket`` in the process makes green TLS sockets.
"""

from __future__ import annotations

import ssl as _stdlib
from collections.abc import Callable
from ssl import *  # noqa: F403 - a drop-in module re-exports everything
from typing import Any

from ..kernel.hub import get_hub as _get_hub
from . import socket as _gsocket

__patched__: list[str] = []  # see _patch(): the class itself is redirected

_SSLWantRead = _stdlib.SSLWantReadError
_SSLWantWrite = _stdlib.SSLWantWriteError


class SSLSocket(_stdlib.SSLSocket, _gsocket.socket):
    """A TLS socket whose handshake, reads and writes wait on the hub."""

    def _ssl_retry(self, op: Callable, *args: Any) -> Any:
        """Run one TLS operation, waiting on the hub for as long as OpenSSL wants."""
        deadline: float | None = None
        fd = -1
        while True:
            try:
                return op(*args)
            except _SSLWantRead:
                if self._timeout == 0.0:
                    raise
                writing = False
            except _SSLWantWrite:
                if self._timeout == 0.0:
                    raise
                writing = True
            hub = _get_hub()
            if fd < 0:
                fd = self.fileno()
                deadline = _gsocket.deadline_after(self._timeout)
            wait = hub.wait_write if writing else hub.wait_read
            wait(fd, _gsocket.time_left(deadline), _gsocket.timed_out)

    #: Set on a connection ``accept`` returned: its handshake is still to run.
    _handshake_pending = False

    def accept(self) -> tuple[Any, Any]:
        """Accept a TLS connection.  Its handshake runs at its first read or
        write -- in the greenthread that serves it -- not here: a client that
        connects and never handshakes cannot hold up an accept loop."""
        sock, addr = super(_stdlib.SSLSocket, self).accept()  # the plain green accept
        conn = self.context.wrap_socket(
            sock,
            do_handshake_on_connect=False,
            suppress_ragged_eofs=self.suppress_ragged_eofs,
            server_side=True,
        )
        conn._handshake_pending = self.do_handshake_on_connect
        return conn, addr

    def _pending_handshake(self) -> None:
        if self._handshake_pending:
            self._handshake_pending = False
            self.do_handshake()

    def read(self, len: int = 1024, buffer: Any = None) -> Any:
        """Read up to ``len`` decrypted bytes (into ``buffer`` if given)."""
        self._pending_handshake()
        return self._ssl_retry(super().read, len, buffer)

    def write(self, data: Any) -> int:
        """Encrypt and send ``data``; returns the number of bytes taken."""
        self._pending_handshake()
        return self._ssl_retry(super().write, data)

    def send(self, data: Any, flags: int = 0) -> int:
        self._pending_handshake()
        return self._ssl_retry(super().send, data, flags)

    def do_handshake(self, block: bool = False) -> None:
        """Run the TLS handshake, waiting on the hub (``block`` as in ``ssl``)."""
        self._check_connected()
        timeout = self._timeout
        if timeout == 0.0 and block:
            self._timeout = None
        try:
            self._ssl_retry(self._sslobj.do_handshake)
        finally:
            self._timeout = timeout

    def send_close_notify(self) -> None:
        """Send TLS close_notify and return without waiting for the peer's.

        ``unwrap`` goes on to read until the peer's close_notify arrives, and
        that read throws away application data still on its way; a relay whose
        own direction has ended wants only its close_notify sent.  Does nothing
        once TLS is shut down.
        """
        if self._sslobj is None:
            return
        try:
            self._sslobj.shutdown()
        except _SSLWantRead:
            pass  # ours is out; the peer's has not come (and is not awaited)

    def unwrap(self) -> Any:
        """Shut TLS down and return the plain socket."""
        if not self._sslobj:
            raise ValueError("No SSL wrapper around " + str(self))
        sock = self._ssl_retry(self._sslobj.shutdown)
        self._sslobj = None
        return sock


class SSLContext(_stdlib.SSLContext):
    """An ``ssl.SSLContext`` whose ``wrap_socket`` makes green ``SSLSocket``s."""

    sslsocket_class = SSLSocket


def create_default_context(*args: Any, **kwargs: Any) -> SSLContext:
    """``ssl.create_default_context``, returning a green ``SSLContext``."""
    ctx = _stdlib.create_default_context(*args, **kwargs)
    ctx.__class__ = SSLContext
    return ctx


def _create_unverified_context(*args: Any, **kwargs: Any) -> SSLContext:
    ctx = _stdlib._create_unverified_context(*args, **kwargs)
    ctx.__class__ = SSLContext
    return ctx


#: What ``http.client`` (and so green urllib) makes its HTTPS contexts with,
#: as in the standard module: a program may swap it for ``_create_unverified_context``.
_create_default_https_context = create_default_context


def wrap_socket(
    sock: Any,
    keyfile: str | None = None,
    certfile: str | None = None,
    server_side: bool = False,
    cert_reqs: int = _stdlib.CERT_NONE,
    ssl_version: int | None = None,
    ca_certs: str | None = None,
    do_handshake_on_connect: bool = True,
    suppress_ragged_eofs: bool = True,
    ciphers: str | None = None,
) -> SSLSocket:
    """The standard library's legacy ``ssl.wrap_socket`` (gone in Python 3.12), green.

    Its arguments and defaults are the old function's, which eventlet programs
    call (``eventlet.wrap_ssl`` is this): the certificate is not verified unless
    ``cert_reqs`` asks for it, and host names are never checked.  New code
    should build an ``SSLContext`` (``create_default_context()``) instead.
    """
    if server_side and not certfile:
        raise ValueError("certfile must be specified for server-side operations")
    if keyfile and not certfile:
        raise ValueError("certfile must be specified")
    if ssl_version is None:
        ssl_version = _stdlib.PROTOCOL_TLS_SERVER if server_side else _stdlib.PROTOCOL_TLS_CLIENT
    context = SSLContext(ssl_version)
    context.check_hostname = False
    context.verify_mode = cert_reqs
    if ca_certs:
        context.load_verify_locations(ca_certs)
    if certfile:
        context.load_cert_chain(certfile, keyfile)
    if ciphers:
        context.set_ciphers(ciphers)
    return context.wrap_socket(
        sock,
        server_side=server_side,
        do_handshake_on_connect=do_handshake_on_connect,
        suppress_ragged_eofs=suppress_ragged_eofs,
    )


def _patch() -> None:
    """Make every ``SSLContext.wrap_socket`` in the process produce green sockets."""
    _stdlib.SSLContext.sslsocket_class = SSLSocket
