"""The ``Forwarder``: one ``net.Server`` per rule, and the life of each connection.

A connection is admitted (``--allow``/``--deny``), gets its TLS from the
client if the forwarder terminates TLS, connects to its rule's target (each of
the target's addresses in turn, TLS on top if asked), is relayed (``relay``)
and watched for idleness, and ends with one log line on the
``nettools.forward`` logger -- peer, rule, bytes each way, duration, and why it
ended if not by EOF -- as text or, with ``json_log``, as one JSON object.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any

from ...green import socket
from ...kernel.greenthread import GreenletExit, spawn
from ...kernel.hub import get_hub
from ...kernel.pool import GreenPool
from ...net import Server, accept_tls, format_address
from ...tlsguard import HandshakeGate
from ..plumbing.service import Stats
from .errors import describe
from .relay import HAVE_SPLICE, Connection, PipePool, relay
from .rules import Network, Rule, admitted
from .tls import relay_context

__all__ = ["Forwarder", "ForwardStats", "FDS_PER_CONNECTION", "log_json_lines"]

log = logging.getLogger("nettools.forward")

#: fds one connection may hold: client, target, and a pipe (two fds) per direction.
FDS_PER_CONNECTION = 6


@dataclass
class ForwardStats(Stats):
    """``Stats`` plus the connections turned away by --allow/--deny."""

    denied: int = 0


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
    ``os.splice``.  Rules come from ``open_rules``, or are made by hand::

        fwd = Forwarder(open_rules(["7000:22"]), idle_timeout=300).start()
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
        self.tls_context = relay_context(tls_context)
        self.target_tls_context = relay_context(target_tls_context)
        self.json_log = json_log
        self.stats = stats if stats is not None else ForwardStats()
        self.splice = HAVE_SPLICE if splice is None else (splice and HAVE_SPLICE)
        self.pipes = PipePool()
        self.pool = GreenPool(max_conns)
        #: TLS handshakes with clients in progress, bounded as a Server bounds its own.
        self.handshakes = HandshakeGate()
        # No ssl_context for the Servers: TLS from the client comes after the
        # address check (a refused client costs no handshake), and a failed
        # handshake is one of this forwarder's connections, logged and counted
        # like any other; so _handle calls net.accept_tls, as Server would.
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
        c = Connection(rule, name, _peer_name(addr, conn.family))
        c.client = conn
        try:
            if not admitted(addr, conn.family, self.allow, self.deny):
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
            relay(c, self.pipes if self.splice else None)
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

    def _accept_tls(self, c: Connection) -> bool:
        """TLS handshake with the client; False (and the reason noted) if it fails."""
        try:
            c.client = accept_tls(
                c.client, self.tls_context, self.connect_timeout, self.handshakes
            )
        except (OSError, ValueError) as exc:
            c.fail("tls-error", f"TLS handshake with client failed: {describe(exc)}")
            return False
        c.client.settimeout(None)
        return True

    def _connect(self, c: Connection) -> bool:
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
            why = describe(error) if error is not None else "no address"
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
                c.fail("tls-error", f"TLS handshake with {target.name} failed: {describe(exc)}")
                return False
        c.upstream.settimeout(None)
        return True

    # ---------------------------------------------------------- idle watchdog

    def _watch_idle(self, c: Connection) -> None:
        # A timer a quarter of the timeout apart rather than a clock read per
        # chunk: the hot path only bumps counters.  Closes after 1 to 1.25 x idle.
        c.timer = get_hub().schedule(self.idle_timeout / 4, self._check_idle, c)

    def _check_idle(self, c: Connection) -> None:
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

    def _log(self, c: Connection) -> None:
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


def _peer_name(addr: Any, family: int) -> str:
    if family == socket.AF_UNIX:
        return f"unix:{addr}" if addr else "unix:(unnamed)"
    return format_address(addr)


def log_json_lines(stream: IO[str] | None = None) -> None:
    """Make the connection log lines bare JSON objects (use with ``json_log``)
    on ``stream`` (default stderr), without the usual log prefix."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
