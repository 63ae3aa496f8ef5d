"""``nettools.tools.forward.Forwarder`` as a library, on this thread's hub.

The targets are stdlib servers in threads (``helpers.sockets.Target``); the
clients are green sockets on the test's hub, or stdlib TLS clients run in a
pool thread.  Each relay test runs on both copy paths: ``os.splice`` through a
pipe, and ``recv_into``/``sendall`` through a buffer.
"""

from __future__ import annotations

import hashlib
import logging
import os
import queue
import socket
import ssl
import struct
import threading

import pytest
from helpers.green import settle
from helpers.sockets import Target, echo_handler, recv_all, recv_exactly
from helpers.tls import Certs

import nettools
from nettools import GreenPool, Timeout, spawn, tpool
from nettools.kernel.greenthread import running_greenthreads
from nettools.tools.forward import HAVE_SPLICE, Forwarder, Rule, parse_networks, resolve_target

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
IO_TIMEOUT = 10
MiB = 1 << 20

no_splice = pytest.mark.skipif(not HAVE_SPLICE, reason="no os.splice here")
relay_paths = pytest.mark.parametrize(
    "splice", [pytest.param(True, id="splice", marks=no_splice), pytest.param(False, id="copy")]
)


@pytest.fixture
def forwarder():
    """``forwarder(target_port, **options)``: a started ``Forwarder`` from 127.0.0.1,
    port 0, to ``target_port``; every one made is stopped afterwards."""
    made: list[Forwarder] = []

    def start(target_port: int, **options) -> Forwarder:
        rule = Rule(nettools.listen((LOCAL, 0)), resolve_target(LOCAL, target_port))
        fwd = Forwarder([rule], **options).start()
        made.append(fwd)
        return fwd

    yield start
    for fwd in made:
        fwd.stop(0)


def connect(fwd: Forwarder) -> nettools.green.socket.socket:
    sock = nettools.connect(fwd.addresses[0])
    sock.settimeout(IO_TIMEOUT)
    return sock


def exchange(fwd: Forwarder, payload: bytes) -> bytes:
    """Send ``payload`` (while reading), half-close, and read everything back until EOF
    (nothing, from a forwarder that turns the client away)."""
    with connect(fwd) as sock:

        def send() -> None:
            try:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # turned away: the reading side tells

        sender = spawn(send)
        try:
            return recv_all(sock)
        finally:
            sender.wait()


def reset(sock) -> None:
    """Close ``sock`` with a TCP reset instead of a FIN."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def refused_port() -> tuple[socket.socket, int]:
    """A loopback port that is bound but not listening, and the socket holding it."""
    holder = socket.socket()
    holder.bind((LOCAL, 0))
    return holder, holder.getsockname()[1]


@pytest.fixture
def forward_log(caplog):
    caplog.set_level(logging.INFO, logger="nettools.forward")
    return caplog


# ------------------------------------------------------------------ relaying


@relay_paths
def test_relays_both_ways_for_concurrent_clients(forwarder, echo_target, splice):
    fwd = forwarder(echo_target.port, splice=splice)
    payloads = [b"", b"x", os.urandom(65536), os.urandom(MiB), os.urandom(3 * MiB)]
    pool = GreenPool(len(payloads))
    with Timeout(30):
        results = list(pool.imap(lambda p: exchange(fwd, p), payloads))
    for got, sent in zip(results, payloads, strict=True):
        assert hashlib.sha256(got).digest() == hashlib.sha256(sent).digest()
    settle()  # every connection has been logged and counted
    stats = fwd.stats
    assert (stats.connections, stats.active, stats.errors) == (len(payloads), 0, 0)
    assert stats.bytes_in == stats.bytes_out == sum(map(len, payloads))


@relay_paths
def test_a_half_close_from_the_client_reaches_the_target(forwarder, splice):
    def answer_after_eof(conn: socket.socket) -> None:
        data = recv_all(conn)  # returns only on the client's EOF, passed on
        conn.sendall(b"%d bytes, then EOF" % len(data))

    target = Target(answer_after_eof)
    try:
        fwd = forwarder(target.port, splice=splice)
        assert exchange(fwd, b"q" * 100_000) == b"100000 bytes, then EOF"
    finally:
        target.close()


@no_splice
def test_a_short_request_already_in_is_relayed_by_one_greenthread(forwarder):
    got_eof, release = threading.Event(), threading.Event()

    def answer_when_released(conn: socket.socket) -> None:
        data = recv_all(conn)
        got_eof.set()
        release.wait(IO_TIMEOUT)
        conn.sendall(b"%d bytes" % len(data))

    target = Target(answer_when_released)
    try:
        fwd = forwarder(target.port)
        settle()  # the acceptor runs and waits
        before = running_greenthreads()
        # A blocking stdlib client: its request and FIN are in before the hub
        # runs, so the client's direction ends without waiting.
        with socket.create_connection(fwd.addresses[0], timeout=IO_TIMEOUT) as client:
            client.sendall(b"q" * 1000)
            client.shutdown(socket.SHUT_WR)
            assert tpool.execute(got_eof.wait, IO_TIMEOUT)
            # The target's direction waits for the answer in the connection's
            # own greenthread: no second one was spawned for it.
            assert running_greenthreads() - before == 1
            release.set()
            assert tpool.execute(recv_all, client) == b"1000 bytes"
    finally:
        release.set()
        target.close()


@relay_paths
def test_a_half_close_from_the_target_leaves_the_client_sending(forwarder, splice):
    after_eof: queue.Queue[bytes] = queue.Queue()

    def greet_then_listen(conn: socket.socket) -> None:
        conn.sendall(b"greeting")
        conn.shutdown(socket.SHUT_WR)  # done talking, still listening
        after_eof.put(recv_all(conn))

    target = Target(greet_then_listen)
    try:
        fwd = forwarder(target.port, splice=splice)
        with connect(fwd) as sock:
            assert recv_all(sock) == b"greeting"  # the target's EOF, passed on
            sock.sendall(b"the client still talks")
            sock.shutdown(socket.SHUT_WR)
            assert tpool.execute(after_eof.get, True, IO_TIMEOUT) == b"the client still talks"
            assert sock.recv(10) == b""
    finally:
        target.close()


@relay_paths
def test_a_reset_by_the_target_closes_the_client(forwarder, forward_log, splice):
    def read_then_reset(conn: socket.socket) -> None:
        conn.recv(10)
        reset(conn)

    target = Target(read_then_reset)
    try:
        fwd = forwarder(target.port, splice=splice)
        with connect(fwd) as sock:
            sock.sendall(b"hello")
            # An abort travels as an abort: a clean EOF here would pass a cut
            # transfer off as a complete one.
            with pytest.raises(ConnectionResetError):
                sock.recv(10)
        settle()
    finally:
        target.close()
    assert fwd.stats.errors == 1
    assert "connection reset by target" in forward_log.text


@relay_paths
def test_a_reset_by_the_client_closes_the_target(forwarder, forward_log, splice):
    seen: queue.Queue[bytes] = queue.Queue()
    connected = threading.Event()

    def read_to_eof(conn: socket.socket) -> None:
        connected.set()
        try:
            seen.put(recv_all(conn))
        except ConnectionResetError:
            seen.put(b"reset")

    target = Target(read_to_eof)
    try:
        fwd = forwarder(target.port, splice=splice)
        sock = connect(fwd)
        sock.sendall(b"partial")
        assert tpool.execute(connected.wait, IO_TIMEOUT)
        reset(sock)
        assert tpool.execute(seen.get, True, IO_TIMEOUT) == b"reset"
        settle()
    finally:
        target.close()
    assert fwd.stats.errors == 1 and fwd.stats.active == 0
    assert "connection reset by client" in forward_log.text


@relay_paths
def test_a_reset_after_a_megabyte_is_a_reset_for_the_client_not_an_end(forwarder, splice):
    def send_then_reset(conn: socket.socket) -> None:
        conn.recv(10)
        conn.sendall(os.urandom(MiB))
        reset(conn)

    target = Target(send_then_reset)
    try:
        fwd = forwarder(target.port, splice=splice)
        with connect(fwd) as sock:
            sock.sendall(b"go")
            with pytest.raises(ConnectionResetError):
                recv_all(sock)  # some of the megabyte perhaps, never a clean EOF
    finally:
        target.close()


@relay_paths
def test_keepalive_on_both_legs_and_no_idle_timeout_by_default(forwarder, echo_target, splice):
    fwd = forwarder(echo_target.port, splice=splice, keepalive=30)
    assert fwd.idle_timeout is None
    with connect(fwd) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        (c,) = fwd.connections
        for leg in (c.client, c.upstream):
            assert leg.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
            assert leg.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 30
        assert c.timer is None  # no idle watchdog


def test_an_unreachable_target_closes_the_client_and_counts_an_error(forwarder, forward_log):
    holder, port = refused_port()
    with holder:
        fwd = forwarder(port)
        assert exchange(fwd, b"anyone there?") == b""
        settle()
    assert fwd.stats.errors == 1
    assert f"cannot connect to {LOCAL}:{port}" in forward_log.text


# ------------------------------------------------------------- who may come


@pytest.mark.parametrize(
    ("allow", "deny", "admitted"),
    [
        ([], [], True),
        ([], ["127.0.0.0/8"], False),
        (["10.0.0.0/8"], [], False),
        (["10.0.0.0/8", "127.0.0.1/32"], [], True),
        (["127.0.0.0/8"], ["127.0.0.1"], False),  # deny wins
    ],
)
def test_allow_and_deny_networks(forwarder, echo_target, allow, deny, admitted):
    fwd = forwarder(
        echo_target.port, allow=parse_networks(allow), deny=parse_networks(deny)
    )
    assert exchange(fwd, b"let me in") == (b"let me in" if admitted else b"")
    settle()
    assert fwd.stats.denied == (0 if admitted else 1)
    assert echo_target.accepted == (1 if admitted else 0)  # a denied client never reaches it


def test_max_conns_holds_further_clients_until_a_slot_frees(forwarder):
    started: queue.Queue[int] = queue.Queue()
    release = threading.Event()

    def held_echo(conn: socket.socket) -> None:
        started.put(1)
        release.wait(IO_TIMEOUT)
        echo_handler(conn)

    target = Target(held_echo)
    try:
        fwd = forwarder(target.port, max_conns=2)
        clients = [connect(fwd) for _ in range(3)]  # all three in the listen backlog
        for i, sock in enumerate(clients):
            sock.sendall(b"client %d" % i)
            sock.shutdown(socket.SHUT_WR)
        for _ in range(2):
            tpool.execute(started.get, True, IO_TIMEOUT)
        settle()
        assert fwd.stats.connections == 2  # the third waits in the backlog
        release.set()
        for i, sock in enumerate(clients):
            assert recv_all(sock) == b"client %d" % i
            sock.close()
        assert fwd.stats.connections == 3
        assert target.max_open == 2
    finally:
        release.set()
        target.close()


# ----------------------------------------------------------------------- TLS


def _digest_after_eof(conn: socket.socket) -> None:
    """Read until EOF, then answer with the length and SHA-256 of what came."""
    data = recv_all(conn)
    conn.sendall(b"%d " % len(data) + hashlib.sha256(data).digest())


def _tls_exchange(address, client_ctx: ssl.SSLContext, payload: bytes) -> bytes:
    """A stdlib TLS client (run in a pool thread): send, half-close with a bare
    FIN, read the answer until the forwarder's close."""
    with socket.create_connection(address, timeout=IO_TIMEOUT) as raw:
        with client_ctx.wrap_socket(raw, server_hostname=LOCAL) as tls:
            tls.sendall(payload)
            socket.socket.shutdown(tls, socket.SHUT_WR)
            return recv_all(tls)


@relay_paths
def test_tls_termination_with_a_test_certificate(forwarder, forward_log, splice):
    certs = Certs()
    target = Target(_digest_after_eof)
    try:
        fwd = forwarder(target.port, tls_context=certs.server_context(green=False), splice=splice)
        payload = os.urandom(2 * MiB)
        answer = tpool.execute(_tls_exchange, fwd.addresses[0], certs.client_context(), payload)
        assert answer == b"%d " % len(payload) + hashlib.sha256(payload).digest()
        # A client that does not speak TLS never reaches the target.
        with connect(fwd) as sock:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
            try:
                recv_all(sock)  # perhaps an alert, then EOF
            except ConnectionResetError:
                pass
        settle()
    finally:
        target.close()
    assert target.accepted == 1
    assert fwd.stats.bytes_in == len(payload) and fwd.stats.errors == 1
    assert "TLS handshake with client failed" in forward_log.text


# ------------------------------------------------------------------ stopping


def test_stop_refuses_new_clients_and_drains_open_connections(forwarder, echo_target):
    fwd = forwarder(echo_target.port)
    address = fwd.addresses[0]
    with connect(fwd) as sock:
        sock.sendall(b"before")
        assert recv_exactly(sock, 6) == b"before"
        stopper = spawn(fwd.stop, IO_TIMEOUT)
        settle()  # the listener is closed; the stop waits for this connection
        with pytest.raises(ConnectionRefusedError):
            nettools.connect(address)
        assert not stopper.dead
        sock.sendall(b" and after the stop")
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b" and after the stop"
        with Timeout(IO_TIMEOUT):
            stopper.wait()
    assert fwd.stats.errors == 0


def test_stop_closes_what_is_left_once_its_timeout_is_up(forwarder, echo_target, forward_log):
    fwd = forwarder(echo_target.port)
    with connect(fwd) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"
        fwd.stop(0.05)
        assert sock.recv(10) == b""  # closed by the stop, not by our timeout
    assert fwd.stats.active == 0
    assert "forwarder stopping" in forward_log.text


def test_idle_timeout_closes_a_quiet_connection(forwarder, echo_target, forward_log):
    fwd = forwarder(echo_target.port, idle_timeout=0.1)
    with connect(fwd) as sock:
        sock.sendall(b"once")
        assert recv_exactly(sock, 4) == b"once"
        assert sock.recv(10) == b""  # then quiet: closed after 0.1-0.125 s
    settle()  # the connection is logged once both directions have ended
    assert "idle for 0.1s" in forward_log.text
