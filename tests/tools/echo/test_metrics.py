"""``nettools echo --metrics``: what every server reports, scraped over HTTP."""

from __future__ import annotations

import socket

import pytest
from helpers.cli import Cli, run_cli
from helpers.metrics import promtool_problems, scrape
from helpers.sockets import parse_address, recv_all

pytestmark = pytest.mark.timeout(60)


def connect(addr):
    return socket.create_connection(addr, timeout=15)


def test_echo_metrics_count_connections_bytes_closes_and_errors():
    with Cli("echo", "--metrics", "127.0.0.1:0", "--idle-timeout", "300ms",
             "--max-line", "16") as srv:  # fmt: skip
        ready = srv.ready()
        addr = parse_address(ready["address"])
        before = scrape(ready["metrics"])
        assert before.value("nettools_connections_accepted_total", service="echo") == 0

        with connect(addr) as plain:  # echoes, then the client closes
            plain.sendall(b"hello\n")
            plain.shutdown(socket.SHUT_WR)
            assert recv_all(plain) == b"hello\n"
        idle = connect(addr)  # says nothing: closed after the idle timeout
        assert recv_all(idle) == b""
        idle.close()
        long = connect(addr)  # a line over --max-line: told, then closed
        long.sendall(b"x" * 40)
        told = recv_all(long)
        assert told.startswith(b"error: line longer than 16 bytes")
        long.close()
        held = connect(addr)
        held.sendall(b"still here\n")
        assert held.recv(100) == b"still here\n"

        m = scrape(ready["metrics"])
        assert m.value("nettools_connections_accepted_total") == 4
        assert m.value("nettools_connections_active") == 1
        assert m.value("nettools_connections_limit") == 10_000
        assert m.labels("nettools_connections_closed_total", "reason") == {
            "client": 1, "idle": 1, "limit": 1}
        assert m.value("nettools_received_bytes_total") == 6 + 40 + 11
        assert m.value("nettools_sent_bytes_total") == 6 + len(told) + 11
        assert m.labels("nettools_errors_total", "kind") == {"line_too_long": 1}
        assert m.value("nettools_greenthreads") >= 2  # the acceptor, the held client
        assert m.value("nettools_info", version=m.labels("nettools_info", "version").popitem()[0])
        assert m.get("process_resident_memory_bytes") > 0
        assert m.types["nettools_hub_lag_seconds"] == "histogram"
        problems = promtool_problems(m.text)
        if problems is None:
            pytest.skip("promtool is not installed")
        assert problems == ""
        held.close()
        assert srv.stop()[0] == 0


def test_a_metrics_address_in_use_is_one_line_and_exit_1():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = run_cli("echo", "--metrics", f"127.0.0.1:{port}")
    assert res.returncode == 1
    assert res.stderr.strip() == (
        f"nettools echo: --metrics: cannot listen on 127.0.0.1:{port}: address already in use")


def test_a_bad_metrics_address_is_a_usage_error():
    res = run_cli("echo", "--metrics", "nowhere")
    assert res.returncode == 2
    assert "--metrics" in res.stderr and "Traceback" not in res.stderr
