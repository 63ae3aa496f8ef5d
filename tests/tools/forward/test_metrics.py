"""``nettools forward --metrics``: the common families and the per-rule ones."""

from __future__ import annotations

import socket

import pytest
from helpers.cli import Cli
from helpers.events import Events
from helpers.metrics import scrape
from helpers.sockets import echo_through, parse_address

pytestmark = pytest.mark.timeout(60)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once closed


def test_forward_metrics_per_rule(echo_target):
    dead = closed_port()
    with Cli("forward", "--metrics", "127.0.0.1:0", f"0:{echo_target.port}", f"0:{dead}") as fwd:
        # Two ready lines: read as a stream (a select per line misses one already buffered).
        lines = Events(fwd.proc.stdout)
        first, second = lines.next(), lines.next()
        assert first["metrics"] == second["metrics"]
        good, bad = parse_address(first["address"]), parse_address(second["address"])
        for _ in range(2):
            assert echo_through(good, b"x" * 1000) == b"x" * 1000
        with socket.create_connection(bad, timeout=10) as c:
            assert c.recv(10) == b""  # the target refused: the client is closed
        held = socket.create_connection(good, timeout=10)
        held.sendall(b"y" * 300)
        assert held.recv(300) == b"y" * 300  # still open: its bytes count already

        m = scrape(first["metrics"])
        good_rule, bad_rule = first["name"], second["name"]
        assert good_rule != bad_rule
        assert m.value("nettools_forward_connections_total", rule=good_rule) == 3
        assert m.value("nettools_forward_connections_total", rule=bad_rule) == 1
        assert m.value("nettools_forward_connections_active", rule=good_rule) == 1
        assert m.value("nettools_forward_received_bytes_total", rule=good_rule) == 2300
        assert m.value("nettools_forward_sent_bytes_total", rule=good_rule) == 2300
        assert m.value("nettools_forward_connections_ended_total", rule=good_rule, end="eof") == 2
        assert m.value("nettools_forward_connections_ended_total",
                       rule=bad_rule, end="unreachable") == 1  # fmt: skip
        # The service-wide families add the rules up.
        assert m.value("nettools_connections_accepted_total", service="forward") == 4
        assert m.value("nettools_connections_active") == 1
        assert m.value("nettools_received_bytes_total") == 2300
        assert m.labels("nettools_connections_closed_total", "reason") == {
            "client": 2, "error": 1}
        assert m.labels("nettools_errors_total", "kind") == {"unreachable": 1}
        held.close()
        assert fwd.stop()[0] == 0


def test_denied_clients_count_as_refused(echo_target):
    with Cli("forward", "--metrics", "127.0.0.1:0", "--deny", "127.0.0.0/8",
             f"0:{echo_target.port}") as fwd:  # fmt: skip
        ready = fwd.ready()
        with socket.create_connection(parse_address(ready["address"]), timeout=10) as c:
            assert c.recv(10) == b""
        m = scrape(ready["metrics"])
        assert m.labels("nettools_connections_refused_total", "reason") == {"denied": 1}
        assert m.labels("nettools_connections_closed_total", "reason") == {}
        assert fwd.stop()[0] == 0


def test_toxics_are_reported_per_rule_and_per_toxic(echo_target):
    with Cli("forward", "--metrics", "127.0.0.1:0", f"db=0:{echo_target.port}",
             "--toxic", "latency:latency=1", "--toxic", "slicer@upstream:name=cut,toxicity=0",
             ) as fwd:  # fmt: skip
        ready = fwd.ready()
        for _ in range(3):
            assert echo_through(parse_address(ready["address"]), b"z" * 100) == b"z" * 100
        m = scrape(ready["metrics"])
        assert m.value("nettools_forward_toxic_toxicity", rule="db", toxic="latency_downstream",
                       type="latency", stream="downstream") == 1
        assert m.value("nettools_forward_toxic_toxicity", rule="db", toxic="cut",
                       type="slicer", stream="upstream") == 0
        # Drawn for each connection's downstream; the toxicity-0 toxic never.
        assert m.value("nettools_forward_toxic_connections_total", rule="db",
                       toxic="latency_downstream", type="latency", stream="downstream") == 3
        assert m.get("nettools_forward_toxic_connections_total", -1, rule="db", toxic="cut",
                     type="slicer", stream="upstream") == -1
        assert m.value("nettools_forward_rule_enabled", rule="db") == 1
        assert fwd.stop()[0] == 0


def test_udp_sessions_count_per_rule():
    import threading

    target = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    target.bind(("127.0.0.1", 0))
    target.settimeout(20)

    def echo_two() -> None:
        for _ in range(2):
            data, addr = target.recvfrom(2048)
            target.sendto(data, addr)

    echoer = threading.Thread(target=echo_two, daemon=True)
    echoer.start()
    port = target.getsockname()[1]
    with Cli("forward", "--metrics", "127.0.0.1:0", f"dns=udp:0:127.0.0.1:{port}") as fwd:
        ready = fwd.ready()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(10)
            for payload in (b"a" * 40, b"b" * 60):
                client.sendto(payload, parse_address(ready["address"]))
                assert client.recvfrom(2048)[0] == payload
            m = scrape(ready["metrics"])
        assert m.value("nettools_forward_connections_total", rule="dns") == 1  # one session
        assert m.value("nettools_forward_connections_active", rule="dns") == 1
        assert m.value("nettools_forward_received_bytes_total", rule="dns") == 100
        assert m.value("nettools_forward_sent_bytes_total", rule="dns") == 100
        assert fwd.stop()[0] == 0
    echoer.join(10)
    target.close()


def test_api_calls_are_not_connections_and_a_disabled_rule_keeps_its_counts(echo_target):
    import json
    import urllib.request

    with Cli("forward", "--metrics", "127.0.0.1:0", "--api", "127.0.0.1:0",
             f"db=0:{echo_target.port}") as fwd:  # fmt: skip
        rule, api = Events(fwd.proc.stdout).until(lambda e: "api" in e)
        assert echo_through(parse_address(rule["address"]), b"q" * 10) == b"q" * 10
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

        def post(path: str, body: dict) -> None:
            req = urllib.request.Request(f"http://{api['address']}{path}", method="POST",
                                         data=json.dumps(body).encode())  # fmt: skip
            with opener.open(req, timeout=10) as resp:
                assert resp.status == 200

        post("/proxies/db", {"enabled": False})  # its server stops, its counts stay
        m = scrape(rule["metrics"])
        assert m.value("nettools_connections_accepted_total", service="forward") == 1
        assert m.value("nettools_received_bytes_total") == 10
        assert m.value("nettools_forward_rule_enabled", rule="db") == 0
        post("/proxies/db", {"enabled": True})
        assert echo_through(parse_address(rule["address"]), b"r" * 10) == b"r" * 10
        m = scrape(rule["metrics"])
        assert m.value("nettools_connections_accepted_total", service="forward") == 2
        assert m.value("nettools_forward_connections_total", rule="db") == 2
        assert fwd.stop()[0] == 0
