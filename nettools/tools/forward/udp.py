"""UDP rules: a session per client address, relaying datagrams both ways.

The rule's socket receives every client's datagrams.  The first datagram
from a client address opens a *session*: a UDP socket connected to one of
the rule's targets (chosen as for TCP), and a greenthread that sends each
datagram the target answers back to that client from the rule's socket.  A
session ends after ``udp_ttl`` seconds with no datagram either way (300 s by
default: short defaults cut voice calls); at most ``udp_max_sessions`` live at
once, and datagrams from further clients are dropped and counted.  Datagrams
are whole up to 64 KiB, never truncated.

A target that answers with ICMP port unreachable (``ECONNREFUSED`` on the
session's socket) is marked down; the session moves to the next target and
sends it the datagram that went unanswered.
"""

from __future__ import annotations

import errno
import logging
import time
from typing import TYPE_CHECKING, Any

from ...green import socket
from ...kernel.greenthread import GreenletExit, GreenThread, kill, spawn
from ...net import format_address
from .errors import describe
from .relay import Connection
from .rules import Rule
from .targets import TargetPool, Unreachable

if TYPE_CHECKING:
    from .forwarder import Forwarder

__all__ = ["UdpProxy", "MAX_DATAGRAM"]

log = logging.getLogger("nettools.forward")

#: Receive buffer for one datagram: the largest a UDP datagram can be.
MAX_DATAGRAM = 65536
#: Kernel buffers asked for on every UDP socket of a rule (the kernel caps them
#: at net.core.rmem_max/wmem_max): bursts queue rather than drop.
SOCKET_BUFFER = 4 << 20


def _big_buffers(sock: Any) -> None:
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
        except OSError:
            pass


class UdpProxy:
    """One UDP rule at run time."""

    def __init__(self, fwd: Forwarder, rule: Rule, name: str) -> None:
        self.fwd = fwd
        self.rule = rule
        self.name = name
        self.options = rule.options
        self.sock: Any = rule.listener
        _big_buffers(self.sock)
        self.listen_address = rule.listener.getsockname()
        self.targets = TargetPool(rule.targets, self.options.balance, self.options.fail_timeout,
                                  self.options.health_check, name)
        self.sessions: dict[Any, Session] = {}
        self.enabled = False
        self._reader: GreenThread | None = None

    @property
    def address(self) -> Any:
        return self.listen_address

    @property
    def listener(self) -> Any:
        """The rule's UDP socket."""
        return self.sock

    @property
    def upstream(self) -> str:
        return ",".join(t.name for t in self.targets.targets)

    @property
    def route(self) -> str:
        return f"udp:{format_address(self.listen_address)} -> {self.upstream}"

    def start(self) -> UdpProxy:
        if not self.enabled:
            self.enabled = True
            self._reader = spawn(self._serve)
        return self

    def stop(self, timeout: float | None = None, why: str = "forwarder stopping") -> None:
        """Stop receiving and end every session (UDP has nothing to drain)."""
        self.enabled = False
        if self._reader is not None:
            kill(self._reader)
            self._reader = None
        for session in list(self.sessions.values()):
            session.conn.fail("stopped", why)
            session.close()
        self.sock.close()

    def _serve(self) -> None:
        recvfrom, sessions, stats = self.sock.recvfrom, self.sessions, self.fwd.stats
        while True:
            try:
                data, addr = recvfrom(MAX_DATAGRAM)
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    return
                log.warning("%s: receiving failed: %s", self.name, describe(exc))
                continue
            session = sessions.get(addr)
            if session is None:
                if len(sessions) >= self.options.udp_max_sessions:
                    _dropped(stats)
                    continue
                session = Session(self, addr)
                if not session.open():
                    session.end()
                    continue
                sessions[addr] = session
                session.start()
            session.forward(data)


def _dropped(stats: Any) -> None:
    if hasattr(stats, "datagrams_dropped"):  # a ForwardStats
        stats.datagrams_dropped += 1


class Session:
    """One client address's datagrams to and from its target."""

    def __init__(self, proxy: UdpProxy, addr: Any) -> None:
        self.proxy = proxy
        self.addr = addr
        self.conn = Connection(proxy.rule, proxy.route, format_address(addr))
        self.upstream: Any = None
        self.last_seen = time.monotonic()
        self.unanswered: bytes | None = None  # the last datagram sent, until an answer
        self.retried = False
        self._replies: GreenThread | None = None
        proxy.fwd.opened(self.conn, proxy.name)

    def start(self) -> None:
        self._replies = spawn(self._run)

    def open(self) -> bool:
        """Connect a socket to a target (instant for UDP); False if none is left."""
        try:
            self.upstream, self.conn.target = self.proxy.targets.connect(
                None, socket.SOCK_DGRAM)
        except Unreachable as exc:
            self.conn.fail("unreachable", str(exc))
            return False
        _big_buffers(self.upstream)
        return True

    def forward(self, data: bytes) -> None:
        """A datagram from the client, to the target."""
        self.last_seen = time.monotonic()
        if self.upstream is not None:
            self._send(data)
        else:
            _dropped(self.proxy.fwd.stats)

    def _send(self, data: bytes) -> None:
        self.unanswered = data
        try:
            self.upstream.send(data)
        except OSError as exc:
            if exc.errno == errno.ECONNREFUSED:
                self._failover(exc)  # an earlier datagram met a closed port
                return
            _dropped(self.proxy.fwd.stats)
            log.debug("%s: datagram to %s dropped: %s", self.proxy.name,
                      self.conn.target.name, describe(exc))
            return
        self.conn.counts[0] += len(data)

    def _failover(self, exc: OSError) -> bool:
        """The target is not there (ICMP port unreachable): mark it down and
        send the unanswered datagram to the next target, once; False if the
        session cannot go on."""
        self.proxy.targets.failed(self.conn.target, describe(exc))
        self.upstream.close()
        self.upstream = None
        if self.retried:
            self.conn.fail("unreachable", f"{self.conn.target.name}: {describe(exc)}")
            return False
        self.retried = True
        if not self.open():
            return False
        if self.unanswered is not None:
            self._send(self.unanswered)
        return self.upstream is not None

    def _run(self) -> None:
        proxy = self.proxy
        ttl = proxy.options.udp_ttl
        sendto = proxy.sock.sendto
        try:
            while self.upstream is not None:
                left = None if ttl is None else ttl - (time.monotonic() - self.last_seen)
                if left is not None and left <= 0:
                    return
                upstream = self.upstream
                upstream.settimeout(left)
                try:
                    data = upstream.recv(MAX_DATAGRAM)
                except TimeoutError:
                    continue  # the loop looks at the time since the last datagram
                except OSError as exc:
                    if upstream is not self.upstream:
                        continue  # a send already moved the session on
                    if exc.errno != errno.ECONNREFUSED:
                        self.conn.fail("error", f"{self.conn.target.name}: {describe(exc)}")
                        return
                    if not self._failover(exc):
                        return
                    continue
                self.last_seen = time.monotonic()
                self.unanswered = None
                self.retried = False
                try:
                    sendto(data, self.addr)
                except OSError as exc:
                    _dropped(proxy.fwd.stats)
                    log.debug("%s: answer to %s dropped: %s", proxy.name, self.conn.peer,
                              describe(exc))
                    continue
                self.conn.counts[1] += len(data)
        except GreenletExit:
            pass
        finally:
            self.end()

    def close(self) -> None:
        if self._replies is not None and not self._replies.dead:
            kill(self._replies)

    def end(self) -> None:
        """The session is over: forget it, count it, log it."""
        proxy = self.proxy
        if proxy.sessions.get(self.addr) is self:
            del proxy.sessions[self.addr]
        if self.upstream is not None:
            self.upstream.close()
            self.upstream = None
        proxy.fwd.finished(self.conn)
