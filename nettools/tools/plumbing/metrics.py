"""Prometheus metrics for every service, read when scraped.

Nothing here runs on a connection's path.  Servers and tools keep plain
counters (``net.Server``'s attributes, a service's ``Stats``, a tool's own
objects, ``Histogram``s); a scrape of ``--metrics ADDR`` turns what they hold at
that moment into Prometheus families with ``prometheus_client``, which also
writes the text format (and the textfile format of node-exporter's textfile
collector, for the clients' ``--metrics-file``).

What every service reports, with a ``service`` label, without doing anything
but use ``net.Server`` (directly or through the WSGI server) and ``Stats``:

* ``nettools_connections_accepted_total``, ``nettools_connections_active``,
  ``nettools_connections_limit`` (most served at once),
  ``nettools_connections_limit_reached_total`` (times new connections had to
  wait in the listen backlog), ``nettools_listen_queue_length`` (how many wait
  there now), ``nettools_connections_refused_total{reason}``,
  ``nettools_connections_closed_total{reason}`` (``client``, ``idle``,
  ``slow``, ``limit``, ``error``, ``stopped``, ...);
* ``nettools_received_bytes_total``, ``nettools_sent_bytes_total``;
* ``nettools_errors_total{kind}``;
* the hub: ``nettools_hub_lag_seconds`` (a histogram of how late a timer the
  hub runs every ``HubProbe.interval`` fires) and ``nettools_greenthreads``;
* ``nettools_info{version}`` and the ``process_*`` families.

A tool adds its own families through ``Stats.metric_sources``: callables given a
``Families`` to fill.
"""

from __future__ import annotations

import socket as _stdsocket
import struct
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client import write_to_textfile as _write_to_textfile
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)

from ..._version import __version__
from ...kernel.greenthread import running_greenthreads
from ...kernel.hub import Timer, get_hub
from ...net import Server, live_servers
from ...web.wsgi import WSGIServer
from .histogram import LAG_BUCKETS, Histogram
from .service import Address, Stats, listen_on

__all__ = [
    "Families",
    "families_metrics",
    "add_server_families",
    "add_stats_families",
    "HubProbe",
    "ServiceCollector",
    "MetricsEndpoint",
    "registry_of",
    "write_metrics_file",
    "METRICS_SERVER_NAME",
]

#: The name of the metrics endpoint's own server: never counted as the service's.
METRICS_SERVER_NAME = "metrics"

_KINDS = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily,
          "histogram": HistogramMetricFamily}  # fmt: skip


class Families:
    """Samples gathered into metric families; each gets the ``service`` label
    (and the ``const`` labels: ``nettools run`` names each service).

    ``counter``/``gauge`` add a value to a sample (the keyword labels pick it:
    adding twice to the same labels sums), ``histogram`` sets one; a family's
    label names are those of its first sample.
    """

    def __init__(self, service: str, **const: str) -> None:
        self.service = service
        self.const = const
        # name -> (kind, doc, label names, {label values: value or histogram})
        self._families: dict[str, tuple[str, str, tuple[str, ...], dict[tuple, Any]]] = {}

    def _samples(self, kind: str, name: str, doc: str, labels: dict[str, str]) -> dict:
        names = tuple(labels)
        entry = self._families.get(name)
        if entry is None:
            entry = self._families[name] = (kind, doc, names, {})
        elif entry[0] != kind or entry[2] != names:
            raise ValueError(f"{name}: {kind} {names}, already {entry[0]} {entry[2]}")
        return entry[3]

    def counter(self, name: str, doc: str, value: float, **labels: str) -> None:
        """Add to a counter sample (``name`` ends in ``_total``)."""
        samples = self._samples("counter", name, doc, labels)
        key = tuple(labels.values())
        samples[key] = samples.get(key, 0) + value

    def gauge(self, name: str, doc: str, value: float, **labels: str) -> None:
        """Add to a gauge sample."""
        samples = self._samples("gauge", name, doc, labels)
        key = tuple(labels.values())
        samples[key] = samples.get(key, 0) + value

    def histogram(self, name: str, doc: str, hist: Histogram, **labels: str) -> None:
        self._samples("histogram", name, doc, labels)[tuple(labels.values())] = hist

    def counts(self, name: str, doc: str, label: str, counts: dict[str, int]) -> None:
        """One counter sample per entry of ``counts`` (label value -> count)."""
        for value, n in sorted(counts.items()):
            self.counter(name, doc, n, **{label: value})

    def dump(self) -> list:
        """The families as plain JSON-able data (see ``load``)."""
        out = []
        for name, (kind, doc, names, samples) in self._families.items():
            rows = [[list(values), {"bounds": v.bounds, "counts": v.counts, "sum": v.sum}
                     if kind == "histogram" else v] for values, v in samples.items()]
            out.append([name, kind, doc, list(names), rows])
        return out

    def load(self, dumped: list, *, gauges: bool = True) -> None:
        """Add the families ``dump`` gave (another process's, say): counters and
        gauges add up, histograms merge; ``gauges=False`` leaves gauges out."""
        for name, kind, doc, names, rows in dumped:
            if kind == "gauge" and not gauges:
                continue
            for values, value in rows:
                labels = dict(zip(names, values, strict=True))
                if kind != "histogram":
                    getattr(self, kind)(name, doc, value, **labels)
                    continue
                hist = Histogram(value["bounds"])
                hist.counts, hist.sum = list(value["counts"]), value["sum"]
                samples = self._samples(kind, name, doc, labels)
                key = tuple(values)
                samples[key] = samples[key].merged(hist) if key in samples else hist

    def metrics(self) -> list[Metric]:
        """The families as ``prometheus_client`` metrics."""
        return families_metrics([self])


def families_metrics(many: Iterable[Families]) -> list[Metric]:
    """The families of ``many`` services as ``prometheus_client`` metrics, one
    per name (each service's samples in it); the services must have the same
    ``const`` label names."""
    out: dict[str, Metric] = {}
    for f in many:
        head = [f.service, *f.const.values()]
        for name, (kind, doc, names, samples) in f._families.items():
            family = out.get(name)
            if family is None:
                labels = ["service", *f.const, *names]
                family = out[name] = _KINDS[kind](name, doc, labels=labels)
            for values, value in samples.items():
                if kind == "histogram":
                    family.add_metric([*head, *values], value.cumulative(), value.sum)
                else:
                    family.add_metric([*head, *values], value)
    return list(out.values())


class HubProbe:
    """The hub's loop lag: a timer every ``interval`` seconds records how late
    it fired (the lateness every timer of the hub meets at that moment)."""

    interval = 0.1

    def __init__(self, interval: float | None = None) -> None:
        if interval is not None:
            self.interval = interval
        self.hub = get_hub()
        self.lag = Histogram(LAG_BUCKETS)
        self._timer: Timer | None = None

    def start(self) -> HubProbe:
        if self._timer is None:
            self._timer = self.hub.schedule(self.interval, self._tick)
        return self

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        late = time.monotonic() - self._timer.deadline
        self.lag.observe(late if late > 0 else 0.0)
        self._timer = self.hub.schedule(self.interval, self._tick)

    def add_to(self, f: Families) -> None:
        f.histogram("nettools_hub_lag_seconds",
                    "How late the hub ran a timer: time spent by other work before it.",
                    self.lag)  # fmt: skip
        f.gauge("nettools_greenthreads", "Greenthreads running (started, not finished).",
                running_greenthreads(self.hub))  # fmt: skip


def _listen_queue(sock: Any) -> int:
    """Connections waiting to be accepted on a TCP listener (0 where unknown)."""
    if sock.family not in (_stdsocket.AF_INET, _stdsocket.AF_INET6):
        return 0
    try:
        info = sock.getsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_INFO, 32)
    except (OSError, AttributeError):
        return 0  # closed, or not Linux
    # struct tcp_info: 8 one-byte fields, then u32 rto, ato, snd_mss, rcv_mss,
    # unacked -- which, on a listener, is the accept queue's length.
    return struct.unpack_from("I", info, 24)[0] if len(info) >= 28 else 0


def add_server_families(f: Families, servers: Iterable[Server]) -> None:
    """The connection families, summed over ``servers`` (none: no families)."""
    servers = list(servers)
    if not servers:
        return
    closed: dict[str, int] = {}
    refused: dict[str, int] = {}
    errors: dict[str, int] = {}
    pools = {}
    for server in servers:
        pools[id(server.pool)] = server.pool.size
        for reason, n in server.closed.items():
            closed[reason] = closed.get(reason, 0) + n
        for reason, n in server.refused.items():
            refused[reason] = refused.get(reason, 0) + n
        for name, n in server.accept_errors.items():
            errors["accept_" + name] = errors.get("accept_" + name, 0) + n
        errors["unhandled"] = errors.get("unhandled", 0) + server.errors
        errors["tls_handshake"] = errors.get("tls_handshake", 0) + server.tls_failures
    f.counter("nettools_connections_accepted_total", "Connections accepted.",
              sum(s.accepted for s in servers))
    f.gauge("nettools_connections_active", "Connections open now.",
            sum(s.active for s in servers))
    f.gauge("nettools_connections_limit", "Most connections served at once.",
            sum(pools.values()))
    f.counter("nettools_connections_limit_reached_total",
              "Times the connection limit was reached: new connections then wait "
              "in the listen backlog.", sum(s.limit_reached for s in servers))
    f.gauge("nettools_listen_queue_length", "Connections waiting in the listen backlog now.",
            sum(_listen_queue(s.socket) for s in servers if not s.stopping))
    f.counts("nettools_connections_refused_total", "Connections refused, by reason.",
             "reason", refused)
    f.counts("nettools_connections_closed_total", "Connections ended, by reason.",
             "reason", closed)
    f.counts("nettools_errors_total", "Errors, by kind.", "kind",
             {k: n for k, n in errors.items() if n})  # fmt: skip


def add_stats_families(f: Families, stats: Stats) -> None:
    """Bytes and the errors a tool counted by kind."""
    bytes_in, bytes_out = stats.bytes_in, stats.bytes_out
    if stats.in_flight is not None:
        more_in, more_out = stats.in_flight()
        bytes_in, bytes_out = bytes_in + more_in, bytes_out + more_out
    f.counter("nettools_received_bytes_total", "Bytes received from clients.", bytes_in)
    f.counter("nettools_sent_bytes_total", "Bytes sent to clients.", bytes_out)
    kinds = dict(stats.error_kinds)
    other = stats.errors - sum(kinds.values())
    if other > 0:
        kinds["other"] = kinds.get("other", 0) + other
    f.counts("nettools_errors_total", "Errors, by kind.", "kind", kinds)


def _servers_but_metrics() -> list[Server]:
    return [s for s in live_servers() if s.name != METRICS_SERVER_NAME]


class ServiceCollector:
    """What one service reports (a ``prometheus_client`` collector).

    ``stats``: the service's ``Stats`` (its ``metric_sources`` add the tool's
    families); ``servers``: a callable giving the servers to count (default:
    every live ``net.Server`` of the process but the metrics endpoint's own),
    each kept once seen, so that a server gone (a forward rule disabled) does
    not take its counts with it; ``probe``: the ``HubProbe`` of the hub the
    service runs on.
    """

    def __init__(
        self,
        service: str,
        stats: Stats | None = None,
        *,
        servers: Callable[[], Iterable[Server]] | None = None,
        probe: HubProbe | None = None,
    ) -> None:
        self.service = service
        self.stats = stats
        self._source = servers if servers is not None else _servers_but_metrics
        self.probe = probe
        self._seen: dict[int, Server] = {}

    def servers(self) -> list[Server]:
        """The servers counted: those ``servers()`` gives now and gave before."""
        for server in self._source():
            self._seen.setdefault(id(server), server)
        return list(self._seen.values())

    def families(self) -> Families:
        f = Families(self.service)
        f.gauge("nettools_info", "The nettools version.", 1, version=__version__)
        add_server_families(f, self.servers())
        if self.stats is not None:
            add_stats_families(f, self.stats)
            for source in self.stats.metric_sources:
                source(f)
        if self.probe is not None:
            self.probe.add_to(f)
        return f

    def collect(self) -> Iterator[Metric]:
        return iter(self.families().metrics())


def registry_of(*collectors: Any, process: bool = True) -> CollectorRegistry:
    """A registry of ``collectors`` (plus the ``process_*`` families)."""
    registry = CollectorRegistry(auto_describe=False)
    for collector in collectors:
        registry.register(collector)
    if process:
        ProcessCollector(registry=registry)
    return registry


class MetricsEndpoint:
    """``/metrics`` in Prometheus' text format (OpenMetrics when asked, gzip when
    accepted) on the listening socket ``sock`` (or an ``Address`` to listen
    on), served by a small green WSGI server of its own.  ``probe``: a
    ``HubProbe`` to stop with it."""

    def __init__(
        self, sock: Any, registry: Any, *, max_conns: int = 16, probe: HubProbe | None = None
    ) -> None:
        self.probe = probe
        if isinstance(sock, Address):
            sock = listen_on(sock)
        self.wsgi = WSGIServer(sock, make_wsgi_app(registry), max_size=max_conns,
                               log_output=False, name=METRICS_SERVER_NAME)  # fmt: skip

    @property
    def address(self) -> Any:
        return self.wsgi.address

    @property
    def socket(self) -> Any:
        return self.wsgi.socket

    def start(self) -> MetricsEndpoint:
        self.wsgi.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        self.wsgi.stop(timeout)
        if self.probe is not None:
            self.probe.stop()


def write_metrics_file(path: str, collector: Any) -> None:
    """Write ``collector``'s families to ``path`` in the text format, atomically
    (node-exporter's textfile collector reads such files)."""
    _write_to_textfile(path, registry_of(collector, process=False))
