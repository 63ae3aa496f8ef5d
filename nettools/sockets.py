"""Green sockets made ready to use, and ended cleanly.

``listen``, ``bind_udp`` and ``connect`` make the green sockets servers and
clients start from; ``shutdown_quietly`` and ``drop_unread`` are how a
connection ends without an error or a reset destroying what was sent last.
``nettools.net`` re-exports them all: import them from there.
"""

from __future__ import annotations

import _socket
import contextlib
import os
import socket as _stdlib_socket
import warnings
from typing import Any

from .address import is_abstract_unix
from .green import socket

__all__ = [
    "listen",
    "bind_udp",
    "connect",
    "is_listening",
    "ReuseRandomPortWarning",
    "shutdown_quietly",
    "drop_unread",
    "UNREAD_LIMIT",
]


class ReuseRandomPortWarning(Warning):
    """``listen`` asked for ``SO_REUSEPORT`` on port 0: the kernel may pick a port
    another ``SO_REUSEPORT`` listener of the same user already holds, and the two
    unrelated servers then silently share its connections (eventlet warns too)."""


def listen(
    addr: Any,
    family: int = socket.AF_INET,
    backlog: int = 1024,
    reuse_addr: bool = True,
    reuse_port: bool | None = None,
    *,
    mode: int | None = None,
) -> socket.socket:
    """A green listening socket on ``addr`` (``(host, port)``, or a path for AF_UNIX).

    A unix socket file left behind by a process that died (nobody listens on
    it any more) is removed first; one somebody still listens on is not.
    ``mode`` (say ``0o600``) sets a unix socket file's permissions before it
    accepts anyone: connecting needs write permission on the file.
    """
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if family == socket.AF_UNIX:
            _remove_stale_unix_socket(addr)
        elif reuse_addr:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            if family != socket.AF_UNIX and isinstance(addr, tuple) and addr[1] == 0:
                warnings.warn(
                    "listen on port 0 with reuse_port=True may share a port another "
                    "SO_REUSEPORT server already uses; bind a fixed port",
                    ReuseRandomPortWarning,
                    stacklevel=2,
                )
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and isinstance(addr, tuple) and addr[0] in ("", "::"):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(addr)
        if mode is not None and family == socket.AF_UNIX and not is_abstract_unix(addr):
            # Before listen(): until then a connect is refused, so nobody gets
            # in under the mode the umask gave the file.
            os.chmod(addr, mode)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


def bind_udp(addr: Any, family: int = socket.AF_INET) -> socket.socket:
    """A green UDP socket bound to ``addr``."""
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def _remove_stale_unix_socket(path: Any) -> None:
    if not isinstance(path, str) or is_abstract_unix(path):
        return  # an abstract name has no file
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    except OSError:
        pass  # missing, not a socket, or no permission: bind() says what is wrong
    finally:
        probe.close()


def is_listening(sock: Any) -> bool:
    """Whether ``sock`` listens (accept() can work); True where that cannot be
    asked, or the socket is closed: accept() then says what is wrong."""
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))
    except OSError:
        return True


def connect(addr: Any, family: int = socket.AF_INET, bind: Any = None) -> socket.socket:
    """A green client socket connected to ``addr``."""
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if bind is not None:
            sock.bind(bind)
        sock.connect(addr)
    except BaseException:
        sock.close()
        raise
    return sock


def shutdown_quietly(conn: Any, how: int = _stdlib_socket.SHUT_RDWR) -> None:
    """Shut ``conn`` down both ways (or as ``how`` says: ``SHUT_WR`` sends a
    FIN), waking its reader (EOF) and writer (EPIPE); an already closed or
    reset socket is not an error.  A TLS socket stays usable the other way."""
    try:
        # The plain socket's shutdown, also for TLS: SSLSocket.shutdown drops the
        # SSL object, so a handler blocked in a read would get ValueError, not EOF.
        _stdlib_socket.socket.shutdown(conn, how)
    except OSError:
        pass


#: The most of what a client sent that ``drop_unread`` reads before a close.
UNREAD_LIMIT = 64 * 1024
_c_recv_into = _socket.socket.recv_into  # the C call: never waits on the hub
_MSG_DONTWAIT = getattr(_stdlib_socket, "MSG_DONTWAIT", 0)
_scratch = memoryview(bytearray(16 * 1024))  # written, never read: shared by all


def drop_unread(conn: Any, limit: int = UNREAD_LIMIT, buffer: Any = None) -> None:
    """Before closing ``conn``: read and drop what has arrived unread (up to
    ``limit`` bytes, into ``buffer`` if given), without waiting.

    Closing a TCP socket with unread data sends a reset instead of an end of
    file, and a reset can destroy what was sent last before the client has
    read it.  What comes later still gets the reset (which tells a client still
    sending that nobody listens)."""
    if not _MSG_DONTWAIT or not isinstance(conn, _socket.socket):
        return
    view = _scratch if buffer is None else buffer
    try:
        while limit > 0:
            n = _c_recv_into(conn, view, min(limit, len(view)), _MSG_DONTWAIT)
            if not n:
                return
            limit -= n
    except OSError:  # nothing more there (EAGAIN), closed, or the client is gone
        pass
