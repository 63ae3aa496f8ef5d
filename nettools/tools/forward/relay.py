"""The relay of one forwarded connection: two directions, each a pump.

What the relay guarantees:

* both directions flow at once and independently;
* a half-close is passed on: EOF from one side becomes ``shutdown(SHUT_WR)``
  on the other, and the connection lives until both directions have ended;
* a reset (or any error) on one side closes both;
* nothing already read is dropped: on EOF whatever is still in flight is
  written out before the shutdown.

A TLS side is half-closed with a bare TCP FIN while it may still send (sending
close_notify from Python would discard what it sends next); it gets a proper
close_notify when it has already finished sending.

On Linux a plain TCP or unix-socket direction moves its bytes with
``os.splice`` through a pipe, so they never enter Python (``splice_pump``);
with TLS on either side (or where splice is missing) a direction copies with
``recv_into`` and ``sendall`` through a buffer that grows with the traffic
(``copy_pump``).  A pump counts the bytes it moves in its ``Connection``,
which also records why the connection ended.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import time
from typing import Any

from ...green import socket, ssl
from ...kernel.greenthread import kill, spawn
from ...kernel.hub import Timer, get_hub
from ...net import shutdown_quietly
from .errors import describe
from .rules import Rule

__all__ = [
    "HAVE_SPLICE",
    "PIPE_SIZE",
    "COPY_MIN",
    "COPY_MAX",
    "PIPE_POOL_SIZE",
    "Connection",
    "PipePool",
    "relay",
    "splice_pump",
    "copy_pump",
    "shutdown_write",
    "is_tls",
]

log = logging.getLogger("nettools.forward")

#: Whether this platform can move socket bytes through a pipe without copying them.
HAVE_SPLICE = hasattr(os, "splice") and hasattr(os, "pipe2")
_SPLICE_FLAGS = (os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK) if HAVE_SPLICE else 0
#: Pipe capacity asked for; the kernel may refuse more than /proc/sys/fs/pipe-max-size.
PIPE_SIZE = 1 << 20
#: The copy path's buffer starts small (idle connections stay cheap) and grows
#: each time a read fills it, up to this.
COPY_MIN, COPY_MAX = 16 * 1024, 256 * 1024
#: Empty pipes kept for reuse, so a new connection costs no pipe2/fcntl/close.
PIPE_POOL_SIZE = 128

#: Errors that mean "the other end is gone" rather than "something is wrong here".
_PEER_GONE = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT, errno.ENOTCONN}
)


class Connection:
    """One forwarded connection: its two sockets and what has happened to it."""

    __slots__ = (
        "rule", "name", "peer", "client", "upstream", "counts", "eof", "started", "end",
        "error", "seen", "active_at", "timer",
    )

    def __init__(self, rule: Rule, name: str, peer: str) -> None:
        self.rule = rule
        self.name = name  # the rule as logs show it
        self.peer = peer
        self.client: Any = None
        self.upstream: Any = None
        self.counts = [0, 0]  # bytes client->target, target->client
        self.eof = [False, False]  # whether each direction has seen EOF
        self.started = time.monotonic()
        self.end = "eof"  # why it ended, for the log line
        self.error = ""
        self.seen = 0  # byte total at the idle watchdog's last look
        self.active_at = self.started
        self.timer: Timer | None = None

    def fail(self, end: str, error: str) -> None:
        """Record the first reason the connection ends abnormally."""
        if self.end == "eof":
            self.end, self.error = end, error

    def abort(self) -> None:
        """Shut both sockets down so both directions wake up and end."""
        for sock in (self.client, self.upstream):
            if sock is not None:
                shutdown_quietly(sock)


class PipePool:
    """Non-blocking pipes for the splice path, kept empty for reuse.

    A pipe starts at the kernel's default size and is enlarged the first time
    a transfer fills it: bulk transfers get big pipes, while idle connections
    stay within the per-user pipe quota (pipe-user-pages-soft).
    """

    def __init__(self, size: int = PIPE_SIZE, keep: int = PIPE_POOL_SIZE) -> None:
        self.size = size
        self.keep = keep
        self.free: list[list[int]] = []

    def get(self) -> list[int] | None:
        """``[read_fd, write_fd, capacity]``, or None when out of fds."""
        if self.free:
            return self.free.pop()
        try:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            log.debug("forward: no pipe for splice (%s); copying instead", exc)
            return None
        try:
            capacity = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ)
        except OSError:
            capacity = 65536
        return [r, w, capacity]

    def grow(self, pipe: list[int]) -> int:
        """Enlarge an empty ``pipe`` (once); returns its capacity now."""
        try:
            pipe[2] = fcntl.fcntl(pipe[1], fcntl.F_SETPIPE_SZ, self.size)
        except OSError:
            pass  # over pipe-max-size or the quota: keep what it has
        pipe.append(1)  # marks it as tried, so it is not tried again
        return pipe[2]

    def put(self, pipe: list[int], empty: bool) -> None:
        """Return a pipe; one that may still hold bytes is closed, never reused."""
        if empty and len(self.free) < self.keep:
            self.free.append(pipe)
        else:
            os.close(pipe[0])
            os.close(pipe[1])

    def close(self) -> None:
        while self.free:
            r, w = self.free.pop()[:2]
            os.close(r)
            os.close(w)


def relay(c: Connection, pipes: PipePool | None) -> None:
    """Move ``c``'s bytes both ways until both directions have ended; plain
    directions splice through ``pipes`` (None: always copy)."""
    if pipes is not None and not (is_tls(c.client) or is_tls(c.upstream)):
        pump, extra = splice_pump, (pipes,)
    else:
        pump, extra = copy_pump, ()
    down = spawn(pump, c.upstream, c.client, c, 1, *extra)
    try:
        pump(c.client, c.upstream, c, 0, *extra)
        down.wait()
    finally:
        if not down.dead:
            kill(down)


def splice_pump(src: Any, dst: Any, c: Connection, way: int, pipes: PipePool) -> None:
    """Move ``src``'s bytes to ``dst`` through a pipe, never into Python;
    ``way`` 0 is client to target, 1 the other way."""
    pipe = pipes.get()
    if pipe is None:
        return copy_pump(src, dst, c, way)
    r, w, capacity = pipe[:3]
    grown = len(pipe) > 3 or capacity >= pipes.size
    hub = get_hub()
    wait_read, wait_write = hub.wait_read, hub.wait_write
    splice, flags = os.splice, _SPLICE_FLAGS
    counts = c.counts
    sfd, dfd = src.fileno(), dst.fileno()
    pending = 0  # bytes in the pipe, not yet written to dst
    writing = False
    try:
        while True:
            # The pipe is empty here, so EAGAIN can only mean src has nothing.
            try:
                n = splice(sfd, w, capacity, None, None, flags)
            except BlockingIOError:
                wait_read(sfd)
                continue
            if not n:
                break
            # A full pipe means a bulk transfer: enlarge it once it is drained.
            full = n == capacity and not grown
            pending = n
            writing = True
            while pending:
                try:
                    sent = splice(r, dfd, pending, None, None, flags)
                except BlockingIOError:
                    wait_write(dfd)
                    continue
                pending -= sent
                counts[way] += sent
            writing = False
            if full:
                capacity = pipes.grow(pipe)
                grown = True
        shutdown_write(dst)
    except OSError as exc:
        _broken(c, exc, way, writing)
    finally:
        pipes.put(pipe, empty=pending == 0)


def copy_pump(src: Any, dst: Any, c: Connection, way: int) -> None:
    """Copy ``src`` to ``dst`` through a buffer that grows while reads fill it;
    ``way`` 0 is client to target, 1 the other way."""
    size = COPY_MIN
    buf = bytearray(size)
    view = memoryview(buf)
    recv_into, sendall = src.recv_into, dst.sendall
    counts = c.counts
    writing = False
    try:
        while True:
            try:
                n = recv_into(buf)
            except ssl.SSLZeroReturnError:
                n = 0  # the peer's close_notify after ours: a clean EOF
            if not n:
                break
            writing = True
            sendall(view[:n])
            writing = False
            counts[way] += n
            if n == size and size < COPY_MAX:
                size *= 4
                buf = bytearray(size)
                view = memoryview(buf)
        c.eof[way] = True
        shutdown_write(dst, close_notify=c.eof[1 - way])
    except OSError as exc:
        _broken(c, exc, way, writing)


def _broken(c: Connection, exc: OSError, way: int, writing: bool) -> None:
    """A direction failed: note why (unless the connection is already ending), close both."""
    side_is_client = (way == 1) if writing else (way == 0)
    side = "client" if side_is_client else "target"
    if isinstance(exc, ssl.SSLError):
        c.fail("tls-error", f"TLS error from {side}: {describe(exc)}")
    elif exc.errno == errno.EBADF or c.end != "eof":
        pass  # closed under us because the connection is already ending
    elif exc.errno in _PEER_GONE:
        c.fail("reset", f"connection reset by {side}")
    else:
        c.fail("error", f"{side}: {describe(exc)}")
    c.abort()


def is_tls(sock: Any) -> bool:
    return isinstance(sock, ssl.SSLSocket)


def shutdown_write(sock: Any, close_notify: bool = False) -> None:
    """Pass EOF on: ``shutdown(SHUT_WR)``, after a TLS close_notify if ``close_notify``.

    Python's ``unwrap`` sends close_notify and then reads for the peer's, and
    that read throws away application data still on its way.  So a TLS side gets
    close_notify only once its own direction has ended; a half-close while it
    may still send is a bare TCP FIN (a "ragged" EOF), which loses nothing.
    """
    if close_notify and is_tls(sock):
        try:
            sock.send_close_notify()
        except (OSError, ValueError):
            pass  # close_notify cannot go out: the peer is gone, or TLS already shut
    # The peer may already be gone; the other direction will notice.
    shutdown_quietly(sock, socket.SHUT_WR)
