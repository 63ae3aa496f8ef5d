"""The ``Forwarder``: a set of named rules (``Proxy`` for TCP, ``UdpProxy`` for
UDP) sharing one connection limit, one pool of pipes and one set of counters.

Rules can be added, removed and replaced while it runs -- by the Toxiproxy API
(``api``), by a reload of a rules file (``reload``), or by a Python caller.
Each connection ends with one log line on the ``nettools.forward`` logger --
peer, rule, bytes each way, duration, and why it ended if not by EOF -- as text
or, with ``json_log``, as one JSON object.
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
from ...green.socket import family_of
from ...kernel.greenthread import spawn
from ...kernel.hub import get_hub
from ...kernel.pool import GreenPool
from ...kernel.sync import Event
from ...tlsguard import HandshakeGate
from ..plumbing.service import Stats
from .errors import ForwardError
from .metrics import CLOSE_REASONS, ERROR_KINDS, ForwardMetrics
from .proxy import Proxy, default_name
from .relay import HAVE_SPLICE, Connection, PipePool
from .rules import Network, ResolvedRule, Rule, RuleOptions
from .tls import relay_context
from .udp import UdpProxy

__all__ = ["Forwarder", "ForwardStats", "FDS_PER_CONNECTION", "KEEPALIVE", "set_keepalive",
           "log_json_lines"]

log = logging.getLogger("nettools.forward")

#: fds one connection may hold: client, target, and a pipe (two fds) per direction.
FDS_PER_CONNECTION = 6
#: Seconds of silence before the first keepalive probe; four unanswered probes
#: a quarter of that apart end the connection (about two minutes in all).
KEEPALIVE = 60.0
KEEPALIVE_PROBES = 4


def set_keepalive(sock: Any, idle: float | None) -> None:
    """TCP keepalive on ``sock``: first probe after ``idle`` seconds of silence
    (None, or a unix socket: nothing to do)."""
    if idle is None or family_of(sock) not in (socket.AF_INET, socket.AF_INET6):
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE, max(1, int(idle)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL, max(1, int(idle / 4)))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT, KEEPALIVE_PROBES)
    except OSError:
        pass  # the peer may already have reset it


@dataclass
class ForwardStats(Stats):
    """``Stats`` plus the connections turned away by --allow/--deny, and the
    UDP datagrams dropped (session limit reached, or too big to send)."""

    denied: int = 0
    datagrams_dropped: int = 0


AnyProxy = Proxy | UdpProxy


class Forwarder:
    """Relays connections (and UDP datagrams) for a set of named rules.

    ``max_conns`` bounds the connections of all rules together.
    ``connect_timeout`` bounds connecting to a target, each TLS handshake
    and reading a client's PROXY header; ``idle_timeout`` (default: none, as
    socat and ``ssh -L``) closes a connection with no bytes moving either way
    for that long; ``keepalive`` turns on TCP keepalive on both legs, first
    probe after that many idle seconds (None: off), so a peer that vanished
    is still found.  ``allow``/``deny`` are networks (see ``parse_networks``):
    a client in a denied network, or outside every allowed one when any are
    given, is closed at once (unix-socket clients are not filtered).
    ``tls_context`` (server side) terminates TLS from clients;
    ``target_tls_context`` (client side) speaks TLS to the targets.
    ``splice`` (default: where available) lets plain directions use
    ``os.splice``.  ``options`` is how rules added at run time (by the
    Toxiproxy API) forward.  Rules come from ``open_rules`` (or ``Rule`` by hand), each
    named by ``Rule.name`` or else after its listen address::

        fwd = Forwarder(open_rules(["db=7000:5432"])).start()
        fwd["db"].add_toxic({"type": "latency", "attributes": {"latency": 100}})
    """

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        *,
        connect_timeout: float | None = 10.0,
        idle_timeout: float | None = None,
        keepalive: float | None = KEEPALIVE,
        max_conns: int = 10_000,
        allow: Iterable[Network] = (),
        deny: Iterable[Network] = (),
        tls_context: Any = None,
        target_tls_context: Any = None,
        json_log: bool = False,
        stats: Stats | None = None,
        splice: bool | None = None,
        options: RuleOptions | None = None,
    ) -> None:
        #: How rules made at run time (by the API) forward.
        self.options = options or RuleOptions()
        self.connect_timeout = connect_timeout
        self.idle_timeout = idle_timeout
        self.keepalive = keepalive
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
        #: Name -> proxy, in the order they were added.
        self.proxies: dict[str, AnyProxy] = {}
        #: Per-rule counts for --metrics (read only when scraped).
        self.metrics = ForwardMetrics(self)
        #: The servers of rules that stopped accepting (see ``servers``).
        self.stopped_servers: list[Any] = []
        self.stats.metric_sources.append(self.metrics.add_to)
        self.stats.in_flight = self.metrics.in_flight
        self.started = False
        self._stopped = Event()
        for rule in rules:
            self.add(rule, start=False)

    # ------------------------------------------------------------ the rules

    def __getitem__(self, name: str) -> AnyProxy:
        """The proxy called ``name``; ``ForwardError`` 404 if none is."""
        proxy = self.proxies.get(name)
        if proxy is None:
            raise ForwardError("proxy not found", 404)
        return proxy

    def __contains__(self, name: str) -> bool:
        return name in self.proxies

    def add(self, rule: Rule, start: bool | None = None, name: str | None = None) -> AnyProxy:
        """Add a rule (listening already) under ``name`` (default: the rule's,
        or its listen address, made unique); starts it if the forwarder runs
        (or as ``start`` says).  ``ForwardError`` 409 if ``name`` is taken
        (the rule's socket is then closed)."""
        if name is None:
            name = rule.name or self._unique(default_name(rule))
        if name in self.proxies:
            rule.listener.close()
            raise ForwardError("proxy already exists", 409)
        cls = UdpProxy if rule.udp else Proxy
        proxy = self.proxies[name] = cls(self, rule, name)
        if start if start is not None else self.started:
            proxy.start()
        return proxy

    def open(self, resolved: ResolvedRule, start: bool | None = None) -> AnyProxy:
        """Listen for ``resolved`` and add it under its key (its name, or its
        listen address as written); ``ServiceError`` if it cannot listen,
        ``ForwardError`` 409 if the key is taken."""
        if resolved.key in self.proxies:
            raise ForwardError("proxy already exists", 409)
        return self.add(resolved.open(), start, name=resolved.key)

    def remove(self, name: str, timeout: float | None = 0) -> None:
        """Stop and forget the proxy called ``name``, giving its connections up
        to ``timeout`` seconds (0: drop them at once, as Toxiproxy does)."""
        proxy = self[name]
        del self.proxies[name]
        proxy.stop(timeout)

    def _unique(self, name: str) -> str:
        if name not in self.proxies:
            return name
        n = 2
        while f"{name}-{n}" in self.proxies:
            n += 1
        return f"{name}-{n}"

    @property
    def addresses(self) -> list[Any]:
        """The listening address of each rule, in order."""
        return [proxy.address for proxy in self.proxies.values()]

    @property
    def connections(self) -> set[Connection]:
        """Every TCP connection being forwarded now."""
        return {c for p in self.proxies.values() if isinstance(p, Proxy) for c in p.connections}

    # ------------------------------------------------------------ running

    def start(self) -> Forwarder:
        """Start accepting on every rule; returns self."""
        self.started = True
        for proxy in list(self.proxies.values()):
            proxy.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Stop accepting, give open connections up to ``timeout`` seconds to end,
        then close what is left."""
        stoppers = [spawn(proxy.stop, timeout) for proxy in list(self.proxies.values())]
        for gt in stoppers:
            gt.wait()
        self.pipes.close()
        if not self._stopped.ready():
            self._stopped.send(None)

    def serve_forever(self) -> None:
        """Start and wait until ``stop`` has finished."""
        self.start()
        self._stopped.wait()

    def servers(self) -> list[Any]:
        """Every ``net.Server`` its TCP rules have had: those accepting now and
        those stopped (a rule disabled, removed or reloaded away), whose counts
        stay part of the forwarder's."""
        now = [p.server for p in self.proxies.values() if getattr(p, "server", None) is not None]
        return self.stopped_servers + now

    def set_keepalive(self, sock: Any) -> None:
        set_keepalive(sock, self.keepalive)

    # ---------------------------------------------------------- idle watchdog

    def watch_idle(self, c: Connection) -> None:
        """Close ``c`` once no bytes have moved either way for ``idle_timeout``."""
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

    # ------------------------------------------------- a connection's counts

    def opened(self, c: Connection, rule_name: str) -> None:
        """Count a connection (or UDP session) that ``rule_name`` took."""
        stats = self.stats
        stats.connections += 1
        stats.active += 1
        c.rule_name = rule_name
        c.metrics = self.metrics
        self.metrics.opened(c)

    def finished(self, c: Connection, server: Any = None, conn: Any = None) -> None:
        """Count and log a connection (or UDP session) that ended; tell
        ``server`` (the ``net.Server`` that accepted ``conn``) why it ended."""
        stats = self.stats
        stats.active -= 1
        stats.bytes_in += c.counts[0]
        stats.bytes_out += c.counts[1]
        kind = ERROR_KINDS.get(c.end)
        if kind is not None:
            stats.error(kind)
        self.metrics.ended(c)
        if server is not None:
            if c.end == "denied":
                server.refuse(conn, "denied")
            else:
                server.end_reason(conn, CLOSE_REASONS.get(c.end, "error"))
        self.log(c)

    # ------------------------------------------------------------- logging

    def log(self, c: Connection) -> None:
        """The one log line of a connection that ended."""
        seconds = time.monotonic() - c.started
        level = logging.INFO if c.end in ("eof", "idle", "stopped", "denied") else logging.WARNING
        if not log.isEnabledFor(level):
            return
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
        if self.json_log:
            log.log(level, "%s", json.dumps(record))
        else:
            # The fields go with the record too: --log-format json shows them as keys.
            why = f" ({c.error})" if c.error else ""
            log.log(
                level,
                "%s via %s: %d bytes in, %d out, %.3fs%s",
                c.peer, c.name, c.counts[0], c.counts[1], seconds, why, extra=record,
            )



def log_json_lines(stream: IO[str] | None = None) -> None:
    """Make the connection log lines bare JSON objects (use with ``json_log``)
    on ``stream`` (default stderr), without the usual log prefix."""
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.handlers[:] = [handler]
    log.propagate = False
