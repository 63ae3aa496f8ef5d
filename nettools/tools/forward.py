"""Port forwarding: relay every connection on a listening socket to a target.

Each accepted connection gets a connection to its rule's target and two
greenthreads, one per direction.  What the relay guarantees:

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
``os.splice`` through a pipe, so they never enter Python; with TLS on either
side (or where splice is missing) a direction copies with ``recv_into`` and
``sendall`` through a buffer that grows with the traffic.

Every connection ends with one log line on the ``nettools.forward`` logger --
peer, rule, bytes each way, duration, and why it ended if not by EOF -- as text
or, with ``json_log``, as one JSON object.  ``Forwarder`` is usable without
the CLI::

    rule = Rule(nettools.listen(("127.0.0.1", 0)), resolve_target("127.0.0.1", 22))
    fwd = Forwarder([rule], idle_timeout=300).start()
"""

from __future__ import annotations

import errno
import fcntl
import ipaddress
import json
import logging
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..green import socket
from ..green import ssl as _gssl
from ..kernel.greenthread import GreenletExit, kill, spawn
from ..kernel.hub import Timer, get_hub
from ..kernel.pool import GreenPool
from ..net import Server, format_address, green_context
from .plumbing.service import Stats

__all__ = [
    "Forwarder",
    "ForwardStats",
    "Rule",
    "Target",
    "resolve_target",
    "unix_target",
    "parse_networks",
    "HAVE_SPLICE",
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

_ss = socket._ss  # the C socket type: its shutdown never touches the TLS layer
_SHUT_WR, _SHUT_RDWR = socket.SHUT_WR, socket.SHUT_RDWR
#: Errors that mean "the other end is gone" rather than "something is wrong here".
_PEER_GONE = frozenset(
    {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ETIMEDOUT, errno.ENOTCONN}
)


# ------------------------------------------------------------------ rules


@dataclass(frozen=True)
class Target:
    """Where a rule's connections go: socket addresses to try in order.

    ``host`` is the name TLS verifies (None for a unix socket); ``name`` is
    how logs show the target.
    """

    name: str
    addresses: tuple[tuple[int, Any], ...]
    host: str | None = None


def resolve_target(host: str, port: int) -> Target:
    """Resolve ``host`` now (green ``getaddrinfo``); raises ``socket.gaierror``.

    Every address is kept: ``localhost`` may resolve to ``::1`` first while the
    target only listens on ``127.0.0.1``, and each is tried in turn.
    """
    infos = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    addresses = tuple(dict.fromkeys((family, sockaddr) for family, _, _, _, sockaddr in infos))
    return Target(format_address((host, port)), addresses, host)


def unix_target(path: str) -> Target:
    """A target that is a unix stream socket at ``path``."""
    return Target(f"unix:{path}", ((socket.AF_UNIX, path),), None)


@dataclass(frozen=True)
class Rule:
    """One forward: connections accepted on ``listener`` go to ``target``."""

    listener: socket.socket
    target: Target

    @property
    def listen_name(self) -> str:
        return format_address(self.listener.getsockname())

    @property
    def name(self) -> str:
        return f"{self.listen_name} -> {self.target.name}"


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> list[Network]:
    """``["10.0.0.0/8", "::1"]`` -> networks; raises ``ValueError`` on a bad one."""
    nets = []
    for text in texts:
        try:
            nets.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            raise ValueError(f"invalid network {text!r} (use e.g. 10.0.0.0/8 or ::1)") from None
    return nets


@dataclass
class ForwardStats(Stats):
    """``Stats`` plus the connections turned away by --allow/--deny."""

    denied: int = 0


# ------------------------------------------------------------ connections


class _Conn:
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
                try:
                    _ss.shutdown(sock, _SHUT_RDWR)
                except OSError:
                    pass


class _PipePool:
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


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, _gssl.SSLCertVerificationError):
        return f"certificate verify failed: {exc.verify_message}"
    if isinstance(exc, _gssl.SSLError):
        reason = getattr(exc, "reason", None)  # e.g. WRONG_VERSION_NUMBER
        return reason.lower().replace("_", " ") if reason else str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower() if exc.strerror[:1].isupper() else exc.strerror
    return str(exc) or type(exc).__name__


def _peer_name(addr: Any, family: int) -> str:
    if family == socket.AF_UNIX:
        return f"unix:{addr}" if addr else "unix:(unnamed)"
    return format_address(addr)


# ------------------------------------------------------------- forwarder


class Forwarder:
    """Relays connections for a set of rules; one ``nettools.net.Server`` per rule.

    ``max_conns`` bounds the connections of all rules together.
    ``connect_timeout`` bounds connecting to the target and each TLS handshake;
    ``idle_timeout`` closes a connection with no bytes moving either way for
    that long.  ``allow``/``deny`` are networks (see ``parse_networks``): a
    client in a denied network, or outside every allowed one when any are
    given, is closed at once (unix-socket clients are not filtered).
    ``tls_context`` (server side) terminates TLS from clients;
    ``target_tls_context`` (client side) speaks TLS to the target.
    ``splice`` (default: where available) lets plain directions use
    ``os.splice``.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        connect_timeout: float | None = 10.0,
        idle_timeout: float | None = None,
        max_conns: int = 10_000,
        allow: Iterable[Network] = (),
        deny: Iterable[Network] = (),
        tls_context: Any = None,
        target_tls_context: Any = None,
        json_log: bool = False,
        stats: Stats | None = None,
        splice: bool | None = None,
    ) -> None:
        self.rules = list(rules)
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.allow = list(allow)
        self.deny = list(deny)
        self.tls_context = _green_context(tls_context)
        self.target_tls_context = _green_context(target_tls_context)
        self.json_log = json_log
        self.stats = stats if stats is not None else ForwardStats()
        self.splice = HAVE_SPLICE if splice is None else (splice and HAVE_SPLICE)
        self.pipes = _PipePool()
        self.pool = GreenPool(max_conns)
        self.servers = [
            Server(rule.listener, self._handler(rule), pool=self.pool, name="forward")
            for rule in self.rules
        ]

    @property
    def addresses(self) -> list[Any]:
        """The listening address of each rule, in order."""
        return [server.address for server in self.servers]

    def start(self) -> Forwarder:
        """Start accepting on every rule; returns self."""
        for server in self.servers:
            server.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, give open connections up to ``timeout`` seconds to end,
        then close what is left."""
        stoppers = [spawn(server.stop, timeout) for server in self.servers]
        for gt in stoppers:
            gt.wait()
        self.pipes.close()

    def serve_forever(self) -> None:
        """Start and wait until every rule's server has stopped."""
        self.start()
        for server in self.servers:
            server.serve_forever()

    # ------------------------------------------------------ one connection

    def _handler(self, rule: Rule) -> Any:
        name = rule.name  # now: once stopping, the listener has no address left

        def handle(conn: socket.socket, addr: Any) -> None:
            self._handle(rule, name, conn, addr)

        return handle

    def _handle(self, rule: Rule, name: str, conn: socket.socket, addr: Any) -> None:
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        c = _Conn(rule, name, _peer_name(addr, conn.family))
        c.client = conn
        try:
            if not self._admitted(addr, conn.family):
                if isinstance(stats, ForwardStats):
                    stats.denied += 1
                c.fail("denied", "client address not allowed")
                return
            if self.tls_context is not None and not self._accept_tls(c):
                return
            if not self._connect(c):
                return
            if self.idle_timeout is not None:
                self._watch_idle(c)
            self._relay(c)
        except GreenletExit:
            c.fail("stopped", "forwarder stopping")
            raise
        finally:
            if c.timer is not None:
                c.timer.cancel()
            for sock in (c.upstream, c.client if c.client is not conn else None):
                if sock is not None:
                    try:
                        sock.close()
                    except OSError:
                        pass
            stats.active -= 1
            stats.bytes_in += c.counts[0]
            stats.bytes_out += c.counts[1]
            if c.end in ("unreachable", "tls-error", "reset", "error"):
                stats.errors += 1
            self._log(c)

    def _admitted(self, addr: Any, family: int) -> bool:
        if not (self.allow or self.deny) or family not in (socket.AF_INET, socket.AF_INET6):
            return True
        ip = ipaddress.ip_address(addr[0].split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack listener shows IPv4 clients as ::ffff:a.b.c.d
        if any(ip in net for net in self.deny):
            return False
        return not self.allow or any(ip in net for net in self.allow)

    def _accept_tls(self, c: _Conn) -> bool:
        """TLS handshake with the client; False (and the reason noted) if it fails."""
        try:
            tls = self.tls_context.wrap_socket(
                c.client, server_side=True, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as exc:
            c.fail("tls-error", f"TLS from client failed: {_describe(exc)}")
            return False
        c.client = tls  # the plain socket is detached now; this one must be closed
        tls.settimeout(self.connect_timeout)
        try:
            tls.do_handshake()
        except (OSError, ValueError) as exc:
            c.fail("tls-error", f"TLS handshake with client failed: {_describe(exc)}")
            return False
        tls.settimeout(None)
        return True

    def _connect(self, c: _Conn) -> bool:
        """Connect to the rule's target (each address in turn); False if unreachable."""
        target = c.rule.target
        deadline = None if self.connect_timeout is None else time.monotonic() + self.connect_timeout
        error: BaseException | None = None
        for family, sockaddr in target.addresses:
            try:
                sock = socket.socket(family, socket.SOCK_STREAM)
            except OSError as exc:  # out of fds
                error = exc
                break
            try:
                if deadline is not None:
                    sock.settimeout(max(deadline - time.monotonic(), 0.001))
                sock.connect(sockaddr)
            except OSError as exc:
                sock.close()
                error = exc
                if isinstance(exc, TimeoutError):
                    break  # the time is used up; other addresses would time out at once
                continue
            if family != socket.AF_UNIX:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                except OSError:
                    pass
            c.upstream = sock
            break
        if c.upstream is None:
            why = _describe(error) if error is not None else "no address"
            c.fail("unreachable", f"cannot connect to {target.name}: {why}")
            return False
        if self.target_tls_context is not None:
            sock = c.upstream
            try:
                tls = self.target_tls_context.wrap_socket(
                    sock, server_hostname=target.host, do_handshake_on_connect=False
                )
                c.upstream = tls
                tls.do_handshake()
            except (OSError, ValueError) as exc:
                c.fail("tls-error", f"TLS handshake with {target.name} failed: {_describe(exc)}")
                return False
        c.upstream.settimeout(None)
        return True

    # ------------------------------------------------------------- relaying

    def _relay(self, c: _Conn) -> None:
        plain = not (_is_tls(c.client) or _is_tls(c.upstream))
        pump = self._splice_pump if plain and self.splice else self._copy_pump
        down = spawn(pump, c.upstream, c.client, c, 1)
        try:
            pump(c.client, c.upstream, c, 0)
            down.wait()
        finally:
            if not down.dead:
                kill(down)

    def _splice_pump(self, src: Any, dst: Any, c: _Conn, way: int) -> None:
        """Move ``src``'s bytes to ``dst`` through a pipe, never into Python."""
        pipe = self.pipes.get()
        if pipe is None:
            return self._copy_pump(src, dst, c, way)
        r, w, capacity = pipe[:3]
        grown = len(pipe) > 3 or capacity >= self.pipes.size
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
                    capacity = self.pipes.grow(pipe)
                    grown = True
            _shutdown_write(dst)
        except OSError as exc:
            self._broken(c, exc, way, writing)
        finally:
            self.pipes.put(pipe, empty=pending == 0)

    def _copy_pump(self, src: Any, dst: Any, c: _Conn, way: int) -> None:
        """Copy ``src`` to ``dst`` through a buffer that grows while reads fill it."""
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
                except _gssl.SSLZeroReturnError:
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
            _shutdown_write(dst, close_notify=c.eof[1 - way])
        except OSError as exc:
            self._broken(c, exc, way, writing)

    def _broken(self, c: _Conn, exc: OSError, way: int, writing: bool) -> None:
        """A direction failed: note why (unless the connection is already ending), close both."""
        side_is_client = (way == 1) if writing else (way == 0)
        side = "client" if side_is_client else "target"
        if isinstance(exc, _gssl.SSLError):
            c.fail("tls-error", f"TLS error from {side}: {_describe(exc)}")
        elif exc.errno == errno.EBADF or c.end != "eof":
            pass  # closed under us because the connection is already ending
        elif exc.errno in _PEER_GONE:
            c.fail("reset", f"connection reset by {side}")
        else:
            c.fail("error", f"{side}: {_describe(exc)}")
        c.abort()

    # ---------------------------------------------------------- idle watchdog

    def _watch_idle(self, c: _Conn) -> None:
        # A timer a quarter of the timeout apart rather than a clock read per
        # chunk: the hot path only bumps counters.  Closes after 1 to 1.25 x idle.
        c.timer = get_hub().schedule(self.idle_timeout / 4, self._check_idle, c)

    def _check_idle(self, c: _Conn) -> None:
        now = time.monotonic()
        total = c.counts[0] + c.counts[1]
        if total != c.seen:
            c.seen, c.active_at = total, now
        elif now - c.active_at >= self.idle_timeout:
            c.timer = None
            c.fail("idle", f"idle for {self.idle_timeout:g}s")
            c.abort()
            return
        c.timer = get_hub().schedule(self.idle_timeout / 4, self._check_idle, c)

    # ------------------------------------------------------------- logging

    def _log(self, c: _Conn) -> None:
        seconds = time.monotonic() - c.started
        level = logging.INFO if c.end in ("eof", "idle", "stopped", "denied") else logging.WARNING
        if not log.isEnabledFor(level):
            return
        if self.json_log:
            record = {
                "event": "closed",
                "peer": c.peer,
                "rule": c.name,
                "bytes_in": c.counts[0],
                "bytes_out": c.counts[1],
                "seconds": round(seconds, 3),
                "end": c.end,
            }
            if c.error:
                record["error"] = c.error
            log.log(level, "%s", json.dumps(record))
        else:
            why = f" ({c.error})" if c.error else ""
            log.log(
                level,
                "%s via %s: %d bytes in, %d out, %.3fs%s",
                c.peer, c.name, c.counts[0], c.counts[1], seconds, why,
            )


def _is_tls(sock: Any) -> bool:
    return isinstance(sock, _gssl.SSLSocket)


def _green_context(ctx: Any) -> Any:
    if ctx is None:
        return None
    # OpenSSL 3 treats a bare FIN as a fatal error and refuses to write after
    # it; a relay must read it as EOF and keep sending the other way.
    ctx.options |= getattr(_gssl, "OP_IGNORE_UNEXPECTED_EOF", 0)
    return green_context(ctx)


def _shutdown_write(sock: Any, close_notify: bool = False) -> None:
    """Pass EOF on: ``shutdown(SHUT_WR)``, after a TLS close_notify if ``close_notify``.

    Python can only send close_notify by also reading for the peer's, and that
    read throws away application data still on its way.  So a TLS side gets
    close_notify only once its own direction has ended; a half-close while it
    may still send is a bare TCP FIN (a "ragged" EOF), which loses nothing.
    """
    if close_notify and _is_tls(sock) and sock._sslobj is not None:
        try:
            sock._sslobj.shutdown()
        except (OSError, ValueError):
            pass  # close_notify is out (or cannot be); the peer's is not awaited
    try:
        _ss.shutdown(sock, _SHUT_WR)
    except OSError:
        pass  # the peer may already be gone; the other direction will notice
