"""The relay of one forwarded connection: two directions, each a pump.

What the relay guarantees:

* both directions flow at once and independently;
* a half-close is passed on: EOF from one side becomes ``shutdown(SHUT_WR)``
  on the other (or, when the other direction has ended already, the close
  that follows at once), and the connection lives until both have ended;
* an abort travels as an abort: a reset (or any error) on one side resets the
  other (``SO_LINGER`` 0, so the close sends RST), so a client can tell a cut
  transfer from a complete one; a FIN stays a half-close;
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

A direction may change paths while it runs: when a toxic comes to apply to it
(``Connection.faulty``), the splice or copy pump stops at a chunk boundary --
nothing read and not yet written, or the chunk just read handed over -- and
the toxic pump ``relay`` was given takes over; when the last toxic goes, the
toxic pump drains and hands back.  So a proxy without toxics keeps the fast
path, and adding or removing one mid-stream loses, repeats and reorders nothing.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from ...green import socket, ssl
from ...kernel.greenthread import kill, spawn
from ...kernel.hub import Timer, get_hub
from ...net import format_address, shutdown_quietly
from .errors import describe
from .rules import Rule

__all__ = [
    "HAVE_SPLICE",
    "PIPE_SIZE",
    "COPY_MIN",
    "COPY_MAX",
    "PIPE_POOL_SIZE",
    "INLINE_LIMIT",
    "Connection",
    "Aborted",
    "PipePool",
    "FaultyPump",
    "relay",
    "splice_pump",
    "copy_pump",
    "broken",
    "shutdown_write",
    "is_tls",
    "peer_name",
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
#: Bytes the client's direction may move before the target's direction gets a
#: greenthread of its own although nothing has had to wait (see ``relay``).
INLINE_LIMIT = 256 * 1024

#: Errors that mean "the other end is gone" rather than "something is wrong here".
_PEER_GONE = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT, errno.ENOTCONN}
)
#: SO_LINGER on, 0 seconds: close() then sends RST instead of FIN.
_LINGER_RESET = struct.pack("ii", 1, 0)

#: ``pump(src, dst, c, way, carry) -> carry or None``: the path a direction
#: takes while toxics apply to it (see ``faults.toxic_pump``).
FaultyPump = Callable[[Any, Any, "Connection", int, bytes], "bytes | None"]


class Aborted(Exception):
    """Thrown into a direction's pump when the connection is reset under it."""


class Connection:
    """One forwarded connection: its two sockets and what has happened to it."""

    __slots__ = (
        "rule", "name", "_peer", "peer_addr", "client", "upstream", "counts", "eof", "started",
        "end", "error", "seen", "active_at", "timer", "faulty", "faults", "pumps", "resetting",
        "target", "rule_name", "metrics", "__weakref__",
    )

    def __init__(self, rule: Rule, name: str, peer: str | None = None,
                 peer_addr: tuple[Any, int] | None = None) -> None:
        self.rule = rule
        self.name = name  # the rule as logs show it
        self._peer = peer
        #: ``(address, family)`` of the client, made into ``peer`` only when asked
        #: (most connections are never logged).
        self.peer_addr = peer_addr
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
        #: Per direction: whether toxics apply to it now, and their state
        #: (``faults.Faults``), set by the proxy.
        self.faulty = [False, False]
        self.faults: list[Any] = [None, None]
        #: The greenthread running each direction, while it runs.
        self.pumps: list[Any] = [None, None]
        self.resetting = False
        self.target: Any = None  # the target this connection went to
        self.rule_name = ""  # the name of the proxy it came through (metrics' rule label)
        self.metrics: Any = None  # its forwarder's ForwardMetrics (counts the toxics drawn)

    @property
    def peer(self) -> str:
        """The client as logs show it (``host:port``, ``unix:...``)."""
        if self._peer is None:
            addr, family = self.peer_addr or (None, socket.AF_INET)
            self._peer = peer_name(addr, family)
        return self._peer

    @peer.setter
    def peer(self, value: str) -> None:
        self._peer = value

    def fail(self, end: str, error: str) -> None:
        """Record the first reason the connection ends abnormally."""
        if self.end == "eof":
            self.end, self.error = end, error

    def abort(self) -> None:
        """Shut both sockets down (a FIN each way) so both directions wake up and end."""
        for sock in (self.client, self.upstream):
            if sock is not None:
                shutdown_quietly(sock)
        for faults in self.faults:
            if faults is not None:
                faults.end()

    def reset(self) -> None:
        """Abort both sides with a TCP reset: no FIN goes out, each socket's
        close sends RST, and every direction still running is stopped."""
        if self.resetting:
            return
        self.resetting = True
        for sock in (self.client, self.upstream):
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RESET)
                except OSError:
                    pass  # already closed
        for faults in self.faults:
            if faults is not None:
                faults.end()
        me = getcurrent()
        for g in self.pumps:
            if g is not None and g is not me:
                kill(g, Aborted())


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


def relay(c: Connection, pipes: PipePool | None, faulty: FaultyPump | None = None) -> None:
    """Move ``c``'s bytes both ways until both directions have ended; plain
    directions splice through ``pipes`` (None: always copy), and a direction
    that toxics apply to goes through ``faulty``.

    The calling greenthread runs the client's direction.  The target's gets a
    greenthread of its own only once the client's would have to wait (or has
    moved ``INLINE_LIMIT`` bytes, or leaves the splice path): a short
    connection whose request and FIN are already in, as most are, ends its
    first direction without waiting and then runs the second in the same
    greenthread -- one greenthread per connection instead of two, and the
    second direction still starts before the first could hold it up.
    """
    if is_tls(c.client) or is_tls(c.upstream):
        pipes = None
    me = getcurrent()
    c.pumps[0] = me
    down: Any = None

    def start_down() -> None:
        nonlocal down
        if down is None:
            down = c.pumps[1] = spawn(_direction, c, 1, pipes, faulty)

    try:
        _direction(c, 0, pipes, faulty, start_down)
        if down is None:
            if not c.resetting:
                c.pumps[1] = me
                _direction(c, 1, pipes, faulty)
            return
        while not down.dead:
            try:
                down.wait()
            except Aborted:
                pass  # the other direction reset the connection; it still ends
    finally:
        if down is not None and not down.dead:
            kill(down)


def _direction(c: Connection, way: int, pipes: PipePool | None, faulty: FaultyPump | None,
               before_wait: Callable[[], None] | None = None) -> None:
    """Run one direction to its end, on whichever path applies at each moment;
    ``before_wait()`` is called before its first wait (see ``relay``)."""
    src, dst = (c.client, c.upstream) if way == 0 else (c.upstream, c.client)
    carry: bytes | None = b""
    try:
        while carry is not None:
            if pipes is not None and not carry and not (c.faulty[way] and faulty is not None):
                carry = splice_pump(src, dst, c, way, pipes, before_wait)
                continue
            if before_wait is not None:
                before_wait()  # the copy and toxic paths wait without telling
                before_wait = None
            if c.faulty[way] and faulty is not None:
                carry = faulty(src, dst, c, way, carry)
            else:
                carry = copy_pump(src, dst, c, way, carry)
    except Aborted:
        pass
    finally:
        c.pumps[way] = None


def splice_pump(src: Any, dst: Any, c: Connection, way: int, pipes: PipePool,
                before_wait: Callable[[], None] | None = None) -> bytes | None:
    """Move ``src``'s bytes to ``dst`` through a pipe, never into Python;
    ``way`` 0 is client to target, 1 the other way.  Returns None once the
    direction has ended, or ``b""`` when toxics come to apply to it (the
    pipe empty, the next bytes still in ``src``).  ``before_wait()`` is
    called (once) before the first wait, or once ``INLINE_LIMIT`` bytes
    have moved without one."""
    pipe = pipes.get()
    if pipe is None:
        if before_wait is not None:
            before_wait()
        return copy_pump(src, dst, c, way)
    r, w, capacity = pipe[:3]
    grown = len(pipe) > 3 or capacity >= pipes.size
    hub = get_hub()
    wait_read, wait_write = hub.wait_read, hub.wait_write
    splice, flags = os.splice, _SPLICE_FLAGS
    counts, faulty = c.counts, c.faulty
    sfd, dfd = src.fileno(), dst.fileno()
    pending = 0  # bytes in the pipe, not yet written to dst
    writing = False
    try:
        while True:
            if faulty[way]:
                return b""
            # The pipe is empty here, so EAGAIN can only mean src has nothing.
            try:
                n = splice(sfd, w, capacity, None, None, flags)
            except BlockingIOError:
                if before_wait is not None:
                    before_wait()
                    before_wait = None
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
                    if before_wait is not None:
                        before_wait()
                        before_wait = None
                    wait_write(dfd)
                    continue
                pending -= sent
                counts[way] += sent
            writing = False
            if before_wait is not None and counts[way] >= INLINE_LIMIT:
                before_wait()
                before_wait = None
            if full:
                capacity = pipes.grow(pipe)
                grown = True
        c.eof[way] = True
        if not c.eof[1 - way]:
            shutdown_write(dst)  # else the close that follows at once sends the FIN
    except OSError as exc:
        broken(c, exc, way, writing)
    finally:
        pipes.put(pipe, empty=pending == 0)
    return None


def copy_pump(src: Any, dst: Any, c: Connection, way: int, carry: bytes = b"") -> bytes | None:
    """Copy ``src`` to ``dst`` through a buffer that grows while reads fill it;
    ``way`` 0 is client to target, 1 the other way.  ``carry`` is written
    first.  Returns None once the direction has ended, or the chunk just read
    when toxics come to apply to it."""
    size = COPY_MIN
    buf = bytearray(size)
    view = memoryview(buf)
    recv_into, sendall = src.recv_into, dst.sendall
    counts, faulty = c.counts, c.faulty
    writing = False
    try:
        if carry:
            writing = True
            sendall(carry)
            writing = False
            counts[way] += len(carry)
        while True:
            if faulty[way]:
                return b""
            try:
                n = recv_into(buf)
            except ssl.SSLZeroReturnError:
                n = 0  # the peer's close_notify after ours: a clean EOF
            except ssl.SSLError:
                if not c.eof[1 - way]:
                    raise
                # OpenSSL 3 answers the bare FIN of our half-close with a fatal
                # alert once it has read everything: that side's end of stream.
                n = 0
            if not n:
                break
            if faulty[way]:
                return bytes(view[:n])  # toxics came while we waited: theirs now
            writing = True
            sendall(view[:n])
            writing = False
            counts[way] += n
            if n == size and size < COPY_MAX:
                size *= 4
                buf = bytearray(size)
                view = memoryview(buf)
        c.eof[way] = True
        if not c.eof[1 - way] or is_tls(dst):
            shutdown_write(dst, close_notify=c.eof[1 - way])
    except OSError as exc:
        broken(c, exc, way, writing)
    return None


def broken(c: Connection, exc: OSError, way: int, writing: bool) -> None:
    """A direction failed: note why (unless the connection is already ending)
    and abort it both ways with a reset."""
    side_is_client = (way == 1) if writing else (way == 0)
    side = "client" if side_is_client else "target"
    if exc.errno == errno.EBADF or c.end != "eof":
        c.abort()  # closed or shut under us because the connection is already ending
        return
    if isinstance(exc, ssl.SSLError):
        c.fail("tls-error", f"TLS error from {side}: {describe(exc)}")
    elif exc.errno in _PEER_GONE:
        c.fail("reset", f"connection reset by {side}")
    else:
        c.fail("error", f"{side}: {describe(exc)}")
    c.reset()


def peer_name(addr: Any, family: int) -> str:
    """A client's address as logs show it."""
    if family == socket.AF_UNIX:
        return f"unix:{addr}" if addr else "unix:(unnamed)"
    return format_address(addr)


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
