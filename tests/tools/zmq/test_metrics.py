"""``nettools zmq proxy|tcp --metrics``: messages per direction, and a bridge's clients."""

from __future__ import annotations

import socket

import pytest
import zmq
from helpers.cli import Cli
from helpers.metrics import scrape
from helpers.sockets import parse_address
from helpers.zmq import TCP0, peer, recv

pytestmark = pytest.mark.timeout(60)


def test_proxy_metrics_count_messages_per_direction(ctx):
    with Cli("zmq", "proxy", "--type", "streamer", "--frontend", TCP0, "--backend", TCP0,
             "--metrics", "127.0.0.1:0") as proxy:  # fmt: skip
        ready = proxy.ready()
        pusher = peer(ctx, zmq.PUSH, ready["frontend"])
        puller = peer(ctx, zmq.PULL, ready["backend"])
        for i in range(50):
            pusher.send_multipart([b"job", b"%02d" % i])
        assert [recv(puller) for _ in range(50)][-1] == [b"job", b"49"]
        m = scrape(ready["metrics"])
        assert m.value("nettools_zmq_proxy_messages_total", service="zmq-proxy",
                       direction="frontend_to_backend") == 50  # fmt: skip
        assert m.value("nettools_zmq_proxy_bytes_total", direction="frontend_to_backend") == 250
        assert m.value("nettools_zmq_proxy_messages_total", direction="backend_to_frontend") == 0
        assert m.value("nettools_zmq_proxy_paused") == 0
        assert "nettools_connections_active" not in m.types  # no TCP server of its own
        assert m.types["nettools_hub_lag_seconds"] == "histogram"
        assert proxy.stop()[0] == 0


def test_tcp_bridge_metrics(ctx):
    with Cli("zmq", "tcp", "--push", TCP0, "--metrics", "127.0.0.1:0",
             "--max-line", "8") as bridge:  # fmt: skip
        ready = bridge.ready()
        puller = peer(ctx, zmq.PULL, ready["push"])
        addr = parse_address(ready["address"])
        with socket.create_connection(addr, timeout=10) as client:
            client.sendall(b"one\ntwo\nthree\n")
            assert [recv(puller) for _ in range(3)] == [[b"one"], [b"two"], [b"three"]]
            client.sendall(b"far too long\n")
            assert client.recv(100).startswith(b"*** Line longer than 8 bytes")
        m = scrape(ready["metrics"])
        assert m.value("nettools_zmq_bridge_messages_total", service="zmq-tcp",
                       direction="to_zmq") == 3  # fmt: skip
        assert m.value("nettools_connections_accepted_total") == 1
        assert m.labels("nettools_errors_total", "kind") == {"line_too_long": 1}
        assert bridge.stop()[0] == 0
