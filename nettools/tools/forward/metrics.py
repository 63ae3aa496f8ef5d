"""What the forwarder reports per rule and per toxic, and how a connection's end is counted.

``ForwardMetrics`` keeps per-rule totals of the connections (and UDP sessions)
that ended and the set of those still open (their bytes count as they flow: a
long SSH session shows its traffic before it ends), and how many connections
each toxic was drawn for.  Nothing here runs per chunk of data: a connection is
counted once when it opens, once per toxic drawn for it and once when it ends;
the rest is read when scraped (``add_to``, a source of ``Stats.metric_sources``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .forwarder import Forwarder
    from .relay import Connection
    from .toxics import Toxic

__all__ = ["ForwardMetrics", "CLOSE_REASONS", "ERROR_KINDS"]

#: ``Connection.end`` -> the reason every server counts (see ``net.Server.end_reason``).
CLOSE_REASONS = {
    "eof": "client",
    "idle": "idle",
    "stopped": "stopped",
    "toxic": "toxic",
    "unreachable": "error",
    "tls-error": "error",
    "reset": "error",
    "error": "error",
    "proxy-protocol": "error",
}
#: ``Connection.end`` -> the kind of error it counts as (``Stats.error``).
ERROR_KINDS = {"unreachable": "unreachable", "tls-error": "tls", "reset": "reset",
               "error": "os", "proxy-protocol": "proxy_protocol"}  # fmt: skip


class _RuleTotals:
    __slots__ = ("opened", "bytes_in", "bytes_out", "ends")

    def __init__(self) -> None:
        self.opened = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.ends: dict[str, int] = {}


class ForwardMetrics:
    """Per-rule and per-toxic totals, and the open connections, of one forwarder."""

    def __init__(self, fwd: Forwarder) -> None:
        self.fwd = fwd
        self.rules: dict[str, _RuleTotals] = {}
        self.open: set[Connection] = set()
        #: (rule, toxic name, type, stream) -> connections the toxic was drawn for.
        self.toxics_drawn: dict[tuple[str, str, str, str], int] = {}

    def _totals(self, rule: str) -> _RuleTotals:
        totals = self.rules.get(rule)
        if totals is None:
            totals = self.rules[rule] = _RuleTotals()
        return totals

    def opened(self, c: Connection) -> None:
        self.open.add(c)
        self._totals(c.rule_name).opened += 1

    def ended(self, c: Connection) -> None:
        self.open.discard(c)
        totals = self._totals(c.rule_name)
        totals.bytes_in += c.counts[0]
        totals.bytes_out += c.counts[1]
        totals.ends[c.end] = totals.ends.get(c.end, 0) + 1

    def toxic_drawn(self, c: Connection, toxic: Toxic) -> None:
        """``toxic`` acts on one direction of ``c`` (its toxicity draw said yes)."""
        key = (c.rule_name, toxic.name, toxic.type, toxic.stream)
        self.toxics_drawn[key] = self.toxics_drawn.get(key, 0) + 1

    def in_flight(self) -> tuple[int, int]:
        """Bytes each way of the connections still open."""
        return sum(c.counts[0] for c in self.open), sum(c.counts[1] for c in self.open)

    def add_to(self, f: Any) -> None:
        """The per-rule and per-toxic families (``f``: a ``plumbing.metrics.Families``)."""
        live: dict[str, list[int]] = {}
        for c in self.open:
            counts = live.setdefault(c.rule_name, [0, 0, 0])
            counts[0] += c.counts[0]
            counts[1] += c.counts[1]
            counts[2] += 1
        proxies = self.fwd.proxies
        for rule in sorted(set(self.rules) | set(live) | set(proxies)):
            totals = self.rules.get(rule) or _RuleTotals()
            now = live.get(rule, [0, 0, 0])
            f.counter("nettools_forward_connections_total",
                      "Connections (UDP: sessions) taken, per rule.", totals.opened, rule=rule)
            f.gauge("nettools_forward_connections_active",
                    "Connections (UDP: sessions) open, per rule.", now[2], rule=rule)
            f.counter("nettools_forward_received_bytes_total",
                      "Bytes from clients to the targets, per rule.",
                      totals.bytes_in + now[0], rule=rule)
            f.counter("nettools_forward_sent_bytes_total",
                      "Bytes from the targets to clients, per rule.",
                      totals.bytes_out + now[1], rule=rule)
            for end, n in sorted(totals.ends.items()):
                f.counter("nettools_forward_connections_ended_total",
                          "Connections ended, per rule and why (eof, idle, denied, unreachable, "
                          "tls-error, proxy-protocol, reset, toxic, error, stopped).",
                          n, rule=rule, end=end)
            proxy = proxies.get(rule)
            if proxy is not None:
                f.gauge("nettools_forward_rule_enabled", "1 while the rule accepts.",
                        int(proxy.enabled), rule=rule)
                for toxic in getattr(proxy, "toxics", ()):
                    f.gauge("nettools_forward_toxic_toxicity",
                            "The toxics in place, per rule: the share of connections each "
                            "acts on.", toxic.toxicity, rule=rule, toxic=toxic.name,
                            type=toxic.type, stream=toxic.stream)  # fmt: skip
        for (rule, name, kind, stream), n in sorted(self.toxics_drawn.items()):
            f.counter("nettools_forward_toxic_connections_total",
                      "Connection directions a toxic acted on (its toxicity draw said yes).",
                      n, rule=rule, toxic=name, type=kind, stream=stream)
