"""What the forwarder reports per rule, and how a connection's end is counted.

``ForwardMetrics`` keeps per-rule totals of the connections that ended and the
set of those still open (their bytes count as they flow: a long SSH session
shows its traffic before it ends).  Nothing here runs per chunk of data: a
connection is counted once when it opens and once when it ends; the rest is
read when scraped (``add_to``, a source of ``Stats.metric_sources``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .relay import Connection

__all__ = ["ForwardMetrics", "CLOSE_REASONS", "ERROR_KINDS"]

#: ``Connection.end`` -> the reason every server counts (see ``net.Server.closed``).
CLOSE_REASONS = {
    "eof": "client",
    "idle": "idle",
    "stopped": "stopped",
    "unreachable": "error",
    "tls-error": "error",
    "reset": "error",
    "error": "error",
}
#: ``Connection.end`` -> the kind of error it counts as (``Stats.error``).
ERROR_KINDS = {"unreachable": "unreachable", "tls-error": "tls", "reset": "reset", "error": "os"}


class _RuleTotals:
    __slots__ = ("bytes_in", "bytes_out", "ends")

    def __init__(self) -> None:
        self.bytes_in = 0
        self.bytes_out = 0
        self.ends: dict[str, int] = {}


class ForwardMetrics:
    """Per-rule totals and the open connections of one forwarder."""

    def __init__(self) -> None:
        self.rules: dict[str, _RuleTotals] = {}
        self.open: set[Connection] = set()
        self.servers: dict[str, Any] = {}  # rule name -> its net.Server

    def opened(self, c: Connection) -> None:
        self.open.add(c)

    def ended(self, c: Connection) -> None:
        self.open.discard(c)
        totals = self.rules.get(c.name)
        if totals is None:
            totals = self.rules[c.name] = _RuleTotals()
        totals.bytes_in += c.counts[0]
        totals.bytes_out += c.counts[1]
        totals.ends[c.end] = totals.ends.get(c.end, 0) + 1

    def in_flight(self) -> tuple[int, int]:
        """Bytes each way of the connections still open."""
        return sum(c.counts[0] for c in self.open), sum(c.counts[1] for c in self.open)

    def add_to(self, f: Any) -> None:
        """The per-rule families (``f`` is a ``plumbing.metrics.Families``)."""
        live: dict[str, list[int]] = {}
        for c in self.open:
            counts = live.setdefault(c.name, [0, 0, 0])
            counts[0] += c.counts[0]
            counts[1] += c.counts[1]
            counts[2] += 1
        for rule in sorted(set(self.rules) | set(live) | set(self.servers)):
            totals = self.rules.get(rule) or _RuleTotals()
            now = live.get(rule, [0, 0, 0])
            server = self.servers.get(rule)
            if server is not None:
                f.counter("nettools_forward_connections_total",
                          "Connections accepted, per rule.", server.accepted, rule=rule)
            f.gauge("nettools_forward_connections_active", "Connections open, per rule.",
                    now[2], rule=rule)
            f.counter("nettools_forward_received_bytes_total",
                      "Bytes from clients to the target, per rule.",
                      totals.bytes_in + now[0], rule=rule)
            f.counter("nettools_forward_sent_bytes_total",
                      "Bytes from the target to clients, per rule.",
                      totals.bytes_out + now[1], rule=rule)
            for end, n in sorted(totals.ends.items()):
                f.counter("nettools_forward_connections_ended_total",
                          "Connections ended, per rule and why (eof, idle, denied, "
                          "unreachable, tls-error, reset, error, stopped).", n, rule=rule, end=end)
