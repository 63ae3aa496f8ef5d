"""``nettools.tools.echo`` as a library: ``EchoServer`` and ``UdpEchoServer`` on this
thread's hub, with green client sockets on the same hub (the CLI tests drive the
same servers through ``nettools echo`` in a subprocess)."""

from __future__ import annotations

import socket

import pytest
from helpers.green import settle
from helpers.sockets import recv_all, recv_exactly

import nettools
from nettools import Timeout, spawn
from nettools.green import socket as gsocket
from nettools.tools.echo import EchoServer, UdpEchoServer

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"
IO_TIMEOUT = 10


@pytest.fixture
def echo():
    """``echo(**options)``: a started ``EchoServer`` on 127.0.0.1, port 0; all stopped after."""
    servers: list[EchoServer] = []

    def start(**options) -> EchoServer:
        server = EchoServer(nettools.listen((LOCAL, 0)), **options).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(0)


def connect(server: EchoServer) -> gsocket.socket:
    sock = nettools.connect(server.address)
    sock.settimeout(IO_TIMEOUT)
    return sock


def nothing_to_read(sock: gsocket.socket) -> bool:
    """True if nothing has arrived on ``sock`` (the server has run as far as it can)."""
    settle()
    sock.settimeout(0)
    try:
        sock.recv(1)
    except BlockingIOError:
        return True
    finally:
        sock.settimeout(IO_TIMEOUT)
    return False


def test_line_mode_echoes_each_complete_line_and_holds_a_partial_one(echo):
    server = echo()
    with connect(server) as sock:
        sock.sendall(b"hello\nwor")
        assert recv_exactly(sock, 6) == b"hello\n"
        assert nothing_to_read(sock)  # "wor" waits for its newline
        sock.sendall(b"ld\nand\nmore\n")
        assert recv_exactly(sock, 15) == b"world\nand\nmore\n"


def test_raw_mode_echoes_bytes_as_they_come(echo):
    server = echo(raw=True)
    with connect(server) as sock:
        sock.sendall(b"no newline")
        assert recv_exactly(sock, 10) == b"no newline"
        payload = bytes(range(256)) * 4096  # 1 MiB, sent while the echo is read
        sender = spawn(sock.sendall, payload)
        assert recv_exactly(sock, len(payload)) == payload
        sender.wait()


def test_an_overlong_line_gets_one_error_line_and_the_server_serves_on(echo):
    server = echo(max_line=16)
    with connect(server) as bad, connect(server) as good:
        bad.sendall(b"x" * 40)  # no newline within 16 bytes
        assert recv_all(bad) == b"error: line longer than 16 bytes\n"  # then EOF
        good.sendall(b"sixteen bytes ok\n")
        assert recv_exactly(good, 17) == b"sixteen bytes ok\n"
    assert server.stats.errors == 1


def test_a_line_of_exactly_max_line_bytes_is_echoed(echo):
    server = echo(max_line=8)
    with connect(server) as sock:
        sock.sendall(b"12345678\n" * 3)
        assert recv_exactly(sock, 27) == b"12345678\n" * 3
    assert server.stats.errors == 0


def test_idle_timeout_closes_a_silent_connection(echo):
    server = echo(idle_timeout=0.05)
    with connect(server) as sock:
        sock.sendall(b"one\n")
        assert recv_exactly(sock, 4) == b"one\n"
        with Timeout(IO_TIMEOUT):
            assert sock.recv(10) == b""  # closed by the server, not by our timeout
    assert server.stats.errors == 0


def test_stats_count_connections_and_bytes(echo):
    server = echo()
    for text in (b"a\n", b"bb\ncc\n"):
        with connect(server) as sock:
            sock.sendall(text)
            sock.shutdown(socket.SHUT_WR)
            assert recv_all(sock) == text
    settle()  # the handlers have seen the EOFs and ended
    stats = server.stats
    assert (stats.connections, stats.active, stats.errors) == (2, 0, 0)
    assert stats.bytes_in == stats.bytes_out == 8


def test_stop_refuses_new_clients_and_lets_a_busy_one_finish(echo):
    server = echo()
    address = server.address
    with connect(server) as sock:
        sock.sendall(b"first\n")
        assert recv_exactly(sock, 6) == b"first\n"
        stopper = spawn(server.stop, IO_TIMEOUT)
        settle()  # the listener is closed; the stop waits for our connection
        with pytest.raises(ConnectionRefusedError):
            nettools.connect(address)
        assert not stopper.dead
        sock.sendall(b"still served\n")
        assert recv_exactly(sock, 13) == b"still served\n"
        sock.shutdown(socket.SHUT_WR)
        assert recv_all(sock) == b""
    with Timeout(IO_TIMEOUT):
        stopper.wait()


def test_a_unix_socket_listener(tmp_path):
    path = str(tmp_path / "echo.sock")
    server = EchoServer(nettools.listen(path, gsocket.AF_UNIX)).start()
    try:
        assert server.address == path
        with nettools.connect(path, gsocket.AF_UNIX) as sock:
            sock.settimeout(IO_TIMEOUT)
            sock.sendall(b"over unix\n")
            assert recv_exactly(sock, 10) == b"over unix\n"
    finally:
        server.stop(0)


# ------------------------------------------------------------------------ UDP


@pytest.fixture
def udp_echo():
    sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    server = UdpEchoServer(sock).start()
    yield server
    server.stop()


def udp_client() -> gsocket.socket:
    sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    sock.settimeout(IO_TIMEOUT)
    return sock


def test_udp_echo_sends_each_datagram_back_to_its_sender(udp_echo):
    with udp_client() as a, udp_client() as b:
        for i in range(3):
            a.sendto(b"from a %d" % i, udp_echo.address)
            b.sendto(b"from b %d" % i, udp_echo.address)
        for i in range(3):
            assert a.recvfrom(100) == (b"from a %d" % i, udp_echo.address)
            assert b.recvfrom(100) == (b"from b %d" % i, udp_echo.address)
        big = b"d" * 60_000  # one datagram, whole
        a.sendto(big, udp_echo.address)
        assert a.recv(65535) == big
    stats = udp_echo.stats
    assert stats.connections == 7  # one per datagram
    assert stats.bytes_in == stats.bytes_out == 6 * 8 + 60_000


def test_udp_echo_stop_closes_its_socket(udp_echo):
    with udp_client() as a:
        a.sendto(b"ping", udp_echo.address)
        assert a.recv(10) == b"ping"
    udp_echo.stop()
    assert udp_echo.socket.fileno() == -1
