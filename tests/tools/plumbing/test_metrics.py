"""The metrics plumbing in-process: the cheap histogram, the families, the hub's
lag probe, the endpoint and the textfile output."""

from __future__ import annotations

import time
import urllib.request

import pytest
from helpers.green import settle
from helpers.metrics import Scrape

import nettools
from nettools.tools.plumbing.histogram import Histogram
from nettools.tools.plumbing.metrics import (
    Families,
    HubProbe,
    MetricsEndpoint,
    ServiceCollector,
    registry_of,
    write_metrics_file,
)
from nettools.tools.plumbing.service import Stats, parse_address

pytestmark = pytest.mark.timeout(30)


def test_histogram_buckets_hold_values_up_to_their_bound():
    h = Histogram((0.1, 1.0))
    for v in (0.05, 0.1, 0.5, 1.0, 7.0):
        h.observe(v)
    assert h.counts == [2, 2, 1]
    assert h.cumulative() == [("0.1", 2), ("1.0", 4), ("+Inf", 5)]
    assert h.count == 5 and h.sum == pytest.approx(8.65)
    with pytest.raises(ValueError):
        Histogram((1.0, 0.5))


def test_families_sum_samples_with_the_same_labels_and_keep_label_names_fixed():
    f = Families("svc")
    f.counter("x_total", "X.", 2, kind="a")
    f.counter("x_total", "X.", 3, kind="a")
    f.counts("x_total", "X.", "kind", {"b": 1})
    (metric,) = f.metrics()
    assert {(tuple(s.labels.items()), s.value) for s in metric.samples} == {
        ((("service", "svc"), ("kind", "a")), 5), ((("service", "svc"), ("kind", "b")), 1)}
    with pytest.raises(ValueError):
        f.counter("x_total", "X.", 1, other="c")
    with pytest.raises(ValueError):
        f.gauge("x_total", "X.", 1, kind="a")


def test_the_probe_sees_the_hub_blocked():
    probe = HubProbe(interval=0.05).start()
    try:
        nettools.sleep(0.12)  # a few ticks on time
        time.sleep(0.3)  # the thread blocked: the next tick is at least 0.25 s late
        nettools.sleep(0.12)
        h = probe.lag
        bounds = (*h.bounds, float("inf"))
        late = sum(n for le, n in zip(bounds, h.counts, strict=True) if le > 0.25)
        assert late >= 1
        assert h.count >= 3
    finally:
        probe.stop()


def test_the_collector_reads_servers_stats_and_tool_sources_when_scraped():
    stats = Stats()
    stats.bytes_in, stats.bytes_out = 10, 20
    stats.error("reset")
    stats.errors += 2  # counted without a kind
    stats.in_flight = lambda: (1, 2)
    stats.metric_sources.append(lambda f: f.gauge("tool_things", "Things.", 7, room="a"))
    sock = nettools.listen(("127.0.0.1", 0))
    server = nettools.Server(sock, lambda conn, addr: conn.recv(1), name="t").start()
    collector = ServiceCollector("t", stats, servers=lambda: [server])
    with nettools.green.socket.create_connection(server.address):
        settle()
        m = Scrape(_text(collector))
        assert m.value("nettools_connections_accepted_total", service="t") == 1
        assert m.value("nettools_connections_active") == 1
        assert m.value("nettools_received_bytes_total") == 11
        assert m.value("nettools_sent_bytes_total") == 22
        assert m.labels("nettools_errors_total", "kind") == {"reset": 1, "other": 2}
        assert m.value("tool_things", room="a") == 7
    server.stop(0)


def test_the_endpoint_serves_the_registry_and_a_file_holds_the_same(tmp_path):
    stats = Stats()
    stats.bytes_in = 5
    collector = ServiceCollector("t", stats, servers=list)
    endpoint = MetricsEndpoint(parse_address("127.0.0.1:0"), registry_of(collector)).start()
    try:
        host, port = endpoint.address[:2]
        url = f"http://{host}:{port}/metrics"
        body = nettools.tpool.execute(lambda: urllib.request.urlopen(url, timeout=10).read())
        m = Scrape(body.decode())
        assert m.value("nettools_received_bytes_total") == 5
        assert m.get("process_cpu_seconds_total") > 0
    finally:
        endpoint.stop(0)
    path = tmp_path / "t.prom"
    write_metrics_file(str(path), collector)
    m = Scrape(path.read_text())
    assert m.value("nettools_received_bytes_total") == 5
    assert not [n for n in m.types if n.startswith("process_")]  # the job's, not a process's


def _text(collector) -> str:
    from prometheus_client import generate_latest

    return generate_latest(registry_of(collector, process=False)).decode()
