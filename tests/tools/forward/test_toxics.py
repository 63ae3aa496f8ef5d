"""Toxics on a ``Forwarder`` in this process: what each does to real connections.

The targets are stdlib servers in threads; the clients green sockets on the
test's hub.  Times are checked only from below (a toxic never makes anything
faster), never as an upper bound; the exactness figures are the bench's.
"""

from __future__ import annotations

import hashlib
import os
import queue
import socket
import time

import pytest
from helpers.green import settle
from helpers.sockets import Target, recv_all, recv_exactly

import nettools
from nettools import GreenPool, Timeout, sleep, spawn, tpool
from nettools.tools.forward import (
    HAVE_SPLICE,
    Forwarder,
    ForwardError,
    Rule,
    Toxic,
    parse_toxic_option,
    resolve_target,
    toxic_from_json,
)

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
IO_TIMEOUT = 10
MiB = 1 << 20

relay_paths = pytest.mark.parametrize("splice", [
    pytest.param(True, id="splice",
                 marks=pytest.mark.skipif(not HAVE_SPLICE, reason="no os.splice here")),
    pytest.param(False, id="copy"),
])


@pytest.fixture
def proxy(echo_target):
    """``proxy(**options)``: a started Forwarder's one proxy to the echo target."""
    made: list[Forwarder] = []

    def start(target_port: int | None = None, **options):
        port = echo_target.port if target_port is None else target_port
        rule = Rule(nettools.listen((LOCAL, 0)), resolve_target(LOCAL, port), name="p")
        fwd = Forwarder([rule], **options).start()
        made.append(fwd)
        return fwd["p"]

    yield start
    for fwd in made:
        fwd.stop(0)


def connect(p) -> nettools.green.socket.socket:
    sock = nettools.connect(p.address)
    sock.settimeout(IO_TIMEOUT)
    return sock


def toxic(kind: str, stream: str = "downstream", **attributes) -> dict:
    return {"type": kind, "stream": stream, "attributes": attributes}


# ------------------------------------------------------------ each toxic


@relay_paths
def test_latency_delays_every_answer_by_at_least_the_latency(proxy, splice):
    p = proxy(splice=splice)
    p.add_toxic(toxic("latency", latency=60))
    with connect(p) as sock:
        for i in range(5):
            start = time.monotonic()
            sock.sendall(b"ping %d" % i)
            assert recv_exactly(sock, 6) == b"ping %d" % i
            assert time.monotonic() - start >= 0.060
        (c,) = p.connections
        assert c.faulty == [False, True]  # only the downstream direction


def test_bandwidth_holds_the_rate(proxy):
    p = proxy()
    p.add_toxic(toxic("bandwidth", "upstream", rate=1000))  # 1 MB/s
    payload = os.urandom(400_000)
    with connect(p) as sock:
        start = time.monotonic()
        sender = spawn(sock.sendall, payload)
        assert recv_exactly(sock, len(payload)) == payload
        assert time.monotonic() - start >= 0.4 * 0.95
        sender.wait()


@relay_paths
@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_limit_data_passes_exactly_n_bytes_then_closes(proxy, splice, stream):
    got: queue.Queue[bytes] = queue.Queue()

    def greet_then_read(conn: socket.socket) -> None:
        conn.sendall(b"g" * 100_000)
        got.put(recv_all(conn))

    target = Target(greet_then_read)
    try:
        p = proxy(target.port, splice=splice)
        p.add_toxic(toxic("limit_data", stream, bytes=12_345))
        with connect(p) as sock:
            if stream == "downstream":
                assert recv_all(sock) == b"g" * 12_345
            else:
                recv_exactly(sock, 100_000)
                spawn(sock.sendall, b"u" * 50_000)
                assert tpool.execute(got.get, True, IO_TIMEOUT) == b"u" * 12_345
                assert recv_all(sock) == b""  # the whole connection closed
    finally:
        target.close()


def test_timeout_zero_holds_the_stream_until_removed_and_loses_nothing(proxy):
    p = proxy()
    p.add_toxic(toxic("timeout", "upstream", timeout=0))
    with connect(p) as sock:
        sock.sendall(b"held")
        with pytest.raises(TimeoutError):
            sock.settimeout(0.3)
            sock.recv(10)
        sock.settimeout(IO_TIMEOUT)
        sock.sendall(b" and more")
        p.remove_toxic("timeout_upstream")
        assert recv_exactly(sock, 13) == b"held and more"


def test_timeout_closes_the_connection_after_its_time(proxy, caplog):
    caplog.set_level("INFO", logger="nettools.forward")
    p = proxy()
    p.add_toxic(toxic("timeout", timeout=100))
    with connect(p) as sock:
        start = time.monotonic()
        sock.sendall(b"no answer comes")
        assert recv_all(sock) == b""
        assert time.monotonic() - start >= 0.1
    settle()
    assert "timeout toxic: closed after 100ms" in caplog.text


@pytest.mark.parametrize("stream", ["upstream", "downstream"])
def test_reset_peer_resets_both_sides(proxy, echo_target, stream):
    p = proxy()
    p.add_toxic(toxic("reset_peer", stream, timeout=50))
    with connect(p) as sock:
        sock.sendall(b"x")
        with pytest.raises(ConnectionResetError):
            recv_all(sock)


def test_slow_close_delays_the_end_of_stream(proxy):
    p = proxy()
    p.add_toxic(toxic("slow_close", delay=150))
    with connect(p) as sock:
        sock.sendall(b"bye")
        sock.shutdown(socket.SHUT_WR)
        assert recv_exactly(sock, 3) == b"bye"
        start = time.monotonic()
        assert sock.recv(10) == b""
        assert time.monotonic() - start >= 0.150 * 0.95


def test_slicer_sends_the_stream_in_small_writes(proxy):
    p = proxy()
    p.add_toxic(toxic("slicer", average_size=10, size_variation=5, delay=3000))
    with connect(p) as sock:
        sock.sendall(b"s" * 200)
        chunks = []
        while sum(map(len, chunks)) < 200:
            chunks.append(sock.recv(1000))
        assert b"".join(chunks) == b"s" * 200
        assert len(chunks) > 5  # 200 bytes in writes of 5 to 15, 3 ms apart


def test_a_toxic_with_toxicity_zero_never_applies(proxy):
    p = proxy()
    p.add_toxic({"type": "latency", "toxicity": 0, "attributes": {"latency": 1000}})
    with connect(p) as sock:
        sock.sendall(b"fast")
        assert recv_exactly(sock, 4) == b"fast"
        (c,) = p.connections
        assert c.faulty == [False, False]  # the splice path stays


def test_toxicity_is_drawn_once_per_connection(proxy):
    p = proxy()
    p.add_toxic({"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 3}})

    def one(i: int) -> bool:
        """True if this connection drew the toxic: its answer stops after 3 bytes."""
        with connect(p) as sock:
            sock.sendall(b"12345678")
            sock.shutdown(socket.SHUT_WR)
            got = recv_all(sock)
        assert got in (b"123", b"12345678")
        return got == b"123"

    drawn = list(GreenPool(10).imap(one, range(60)))
    # Each of 60 connections draws with p = 0.5: all alike has a chance of 2**-59.
    assert any(drawn) and not all(drawn)


# ---------------------------------------------- changes while data flows


@relay_paths
def test_toxics_added_and_removed_mid_stream_lose_repeat_or_reorder_nothing(proxy, splice):
    p = proxy(splice=splice)
    payload = os.urandom(24 * MiB)
    changes = [
        toxic("latency", latency=5, jitter=3),
        toxic("slicer", "upstream", average_size=4096, size_variation=2000, delay=50),
        toxic("bandwidth", rate=100_000),
        toxic("latency", "upstream", latency=2),
        toxic("slow_close", delay=10),
    ]
    done = []

    def churn() -> None:
        (c,) = p.connections
        for round_ in range(20):
            for t in changes:
                p.add_toxic(t)
                sleep(0.005)
            assert c.faulty == [True, True]  # both directions through their toxics
            for t in changes[::2]:
                p.update_toxic(f"{t['type']}_{t['stream']}", {"toxicity": 1.0})
            for t in changes:
                p.remove_toxic(f"{t['type']}_{t['stream']}")
                sleep(0.005 * (round_ % 3))
        done.append(True)

    with connect(p) as sock:
        churner = spawn(churn)

        def send() -> None:
            for i in range(0, len(payload), MiB):
                sock.sendall(payload[i : i + MiB])
            churner.wait()
            sock.shutdown(socket.SHUT_WR)

        sender = spawn(send)
        with Timeout(50):
            got = recv_all(sock)
        sender.wait()
    assert done
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_many_connections_under_toxics_each_arrive_intact(proxy):
    p = proxy()
    p.add_toxic(toxic("latency", latency=10, jitter=10))
    p.add_toxic(toxic("slicer", "upstream", average_size=1000, size_variation=900))

    def one(i: int) -> bool:
        data = os.urandom(100_000 + i)
        with connect(p) as sock:
            spawn(lambda: (sock.sendall(data), sock.shutdown(socket.SHUT_WR)))
            return recv_all(sock) == data

    assert all(GreenPool(20).imap(one, range(20)))


# ------------------------------------------------------------- the model


def test_toxic_errors_are_toxiproxys():
    with pytest.raises(ForwardError) as caught:
        toxic_from_json({"type": "nope"})
    assert (str(caught.value), caught.value.status) == ("invalid toxic type", 400)
    with pytest.raises(ForwardError, match="stream was invalid"):
        toxic_from_json({"type": "latency", "stream": "sideways"})
    with pytest.raises(ForwardError, match="whole number"):
        toxic_from_json({"type": "latency", "attributes": {"latency": "fast"}})
    with pytest.raises(ForwardError, match="no attribute"):
        toxic_from_json({"type": "latency", "attributes": {"latenc": 1}})
    with pytest.raises(ForwardError, match="between 0 and 1"):
        toxic_from_json({"type": "latency", "toxicity": 2})
    t = toxic_from_json({"type": "bandwidth", "attributes": {"rate": 5}})
    assert t.to_json() == {"name": "bandwidth_downstream", "type": "bandwidth",
                           "stream": "downstream", "toxicity": 1.0,
                           "attributes": {"rate": 5}}


def test_toxic_option_syntax():
    rule, t = parse_toxic_option("timeout@upstream:timeout=500,toxicity=0.5,rule=db,name=t1")
    assert rule == "db"
    assert (t.name, t.type, t.stream, t.toxicity, t.attributes, t.static) == (
        "t1", "timeout", "upstream", 0.5, {"timeout": 500}, True)
    assert parse_toxic_option("latency")[1] == Toxic("latency_downstream", "latency",
                                                     attributes={"latency": 0, "jitter": 0},
                                                     static=True)
    for bad in ("latency:latency", "latency:latency=x", "nope", "latency@sideways"):
        with pytest.raises(ValueError, match="invalid toxic"):
            parse_toxic_option(bad)
