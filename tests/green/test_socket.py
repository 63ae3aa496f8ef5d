"""nettools.green.socket: the stdlib socket API on real loopback sockets, waiting on the hub.

Most tests start the waiting side first in a greenthread and check that it
parked (``settle()`` lets a freshly spawned greenthread run until its first
wait), so the EAGAIN-then-wait path is exercised, not just the fast path.
"""

from __future__ import annotations

import _socket
import array
import errno
import gc
import hashlib
import io
import os
import random
import resource
import select as select_module
import socket as stdsocket
import struct
import threading
import time

import pytest
from helpers.green import settle, ticking
from helpers.sockets import ipv6_available, recv_exactly

import nettools
from nettools import Event, IOClosed, sleep, spawn
from nettools.green import socket as gsocket
from nettools.kernel import tpool
from nettools.kernel.fdwait import ConcurrentWaitError
from nettools.kernel.hub import get_hub, trampoline

pytestmark = pytest.mark.timeout(30)

LOCAL = "127.0.0.1"


# ----------------------------------------------------------------- helpers


needs_ipv6 = pytest.mark.skipif(not ipv6_available(), reason="IPv6 loopback ::1 unavailable")


@pytest.fixture
def tcp_pair(listener):
    """Two connected green TCP sockets ``(client, server_side)``."""
    client = gsocket.create_connection(listener.getsockname())
    server, _ = listener.accept()
    yield client, server
    client.close()
    server.close()


def parked(gt) -> bool:
    """True if ``gt`` started and is now waiting (not finished)."""
    settle()
    return not gt.dead


def fill_send_buffer(sock) -> int:
    """Write to ``sock`` (non-blocking) until the kernel says EAGAIN."""
    sock.setblocking(False)
    block = b"f" * 65536
    total = 0
    try:
        for _ in range(100_000):
            total += sock.send(block)
    except BlockingIOError:
        pass
    finally:
        sock.setblocking(True)
    return total


def drain(sock) -> int:
    """Read until EOF, return the byte count."""
    total = 0
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk:
            return total
        total += len(chunk)


# --------------------------------------------------------------- identity


def test_green_socket_is_a_stdlib_socket(listener, tcp_pair):
    client, server = tcp_pair
    for sock in (listener, client, server):
        assert isinstance(sock, stdsocket.socket)
        assert isinstance(sock, gsocket.socket)
    assert gsocket.SocketType is gsocket.socket
    # The module is a drop-in: constants and helpers are the stdlib's.
    assert gsocket.AF_INET == stdsocket.AF_INET
    assert gsocket.inet_aton is stdsocket.inet_aton


def test_os_level_fd_stays_non_blocking_whatever_the_timeout(tcp_pair):
    client, _ = tcp_pair
    for setting in (None, 2.0, 0.0):
        client.settimeout(setting)
        assert os.get_blocking(client.fileno()) is False


# ------------------------------------------------------- accept / connect


def test_a_socket_takes_an_existing_one_over_as_eventlets_does():
    a, b = stdsocket.socketpair()
    a.settimeout(2.5)
    fd = a.fileno()
    green = gsocket.socket(a)  # eventlet's socket(sock), also GreenSocket(sock)
    try:
        assert a.fileno() == -1 and green.fileno() == fd  # the fd moved over
        assert green.family == stdsocket.AF_UNIX and green.gettimeout() == 2.5
        assert green.fd is green  # eventlet's "real socket": the green one is it
        assert not os.get_blocking(green.fd.fileno())
        b.sendall(b"x")
        assert green.recv(1) == b"x"
        assert gsocket.GreenSocket is gsocket.socket
    finally:
        green.close()
        b.close()


def test_accept_waits_for_a_connection_and_returns_a_green_socket(listener):
    gt = spawn(listener.accept)
    assert parked(gt)
    client = gsocket.socket()
    client.connect(listener.getsockname())
    conn, addr = gt.wait()
    try:
        assert isinstance(conn, gsocket.socket)
        assert addr == client.getsockname()
        assert conn.getpeername() == client.getsockname()
        assert conn.gettimeout() is None
        client.sendall(b"ping")
        assert conn.recv(4) == b"ping"
    finally:
        conn.close()
        client.close()


def test_accepted_socket_is_blocking_even_if_listener_has_a_timeout(listener):
    # stdlib rule: with no default timeout, accepted sockets are blocking.
    listener.settimeout(5)
    client = gsocket.create_connection(listener.getsockname())
    conn, _ = listener.accept()
    with client, conn:
        assert conn.gettimeout() is None and conn.getblocking()


def _refused_address():
    """A loopback port that is bound but not listening: connecting is refused."""
    holder = stdsocket.socket()
    holder.bind((LOCAL, 0))
    return holder, holder.getsockname()


def test_connect_to_a_closed_port_raises_connection_refused():
    holder, addr = _refused_address()
    with holder, gsocket.socket() as sock:
        with pytest.raises(ConnectionRefusedError) as info:
            sock.connect(addr)
        assert info.value.errno == errno.ECONNREFUSED


def test_connect_ex_returns_errno_like_stdlib(listener):
    holder, addr = _refused_address()
    with holder, gsocket.socket() as sock:
        assert sock.connect_ex(addr) == errno.ECONNREFUSED
    with gsocket.socket() as sock:
        assert sock.connect_ex(listener.getsockname()) == 0
        conn, _ = listener.accept()
        conn.close()


def test_connect_with_timeout_gives_up_on_a_listener_whose_backlog_is_full():
    # A listener that never accepts with backlog 0 takes one connection into its
    # queue; Linux then drops further SYNs, so the next connect never completes.
    full = gsocket.socket()
    full.bind((LOCAL, 0))
    full.listen(0)
    clients = []
    try:
        with ticking() as ticks:
            for _ in range(8):  # bounded: the queue holds one or two at most
                sock = gsocket.socket()
                clients.append(sock)
                sock.settimeout(0.3)
                start = time.monotonic()
                try:
                    sock.connect(full.getsockname())
                except TimeoutError as exc:
                    elapsed = time.monotonic() - start
                    assert str(exc) == "timed out"
                    break
            else:
                pytest.fail("the backlog never filled up")
        assert 0.3 <= elapsed < 10
        assert ticks[0] > 0  # other greenthreads ran during the connect
        # connect_ex reports a timeout the way stdlib does: EAGAIN/EWOULDBLOCK.
        with gsocket.socket() as sock:
            sock.settimeout(0.2)
            assert sock.connect_ex(full.getsockname()) == errno.EAGAIN
    finally:
        for sock in clients:
            sock.close()
        full.close()


def test_non_blocking_connect_raises_blocking_io_error_like_stdlib(listener):
    with gsocket.socket() as sock:
        sock.setblocking(False)
        try:
            sock.connect(listener.getsockname())
        except BlockingIOError as exc:
            assert exc.errno == errno.EINPROGRESS
        # Either way the connection completes and the fd becomes writable.
        trampoline(sock, write=True, timeout=5)
        assert sock.getsockopt(gsocket.SOL_SOCKET, gsocket.SO_ERROR) == 0
        conn, _ = listener.accept()
        conn.close()


# --------------------------------------------------------------- receiving


def _recv_call(sock, method: str):
    if method == "recv":
        return sock.recv(100)
    if method == "recv_into":
        buf = bytearray(100)
        n = sock.recv_into(buf)
        return bytes(buf[:n])
    if method == "recvfrom":
        data, _addr = sock.recvfrom(100)
        return data
    if method == "recvfrom_into":
        buf = bytearray(100)
        n, _addr = sock.recvfrom_into(buf)
        return bytes(buf[:n])
    if method == "recvmsg":
        data, _anc, _flags, _addr = sock.recvmsg(100)
        return data
    if method == "recvmsg_into":
        buf = bytearray(100)
        n, _anc, _flags, _addr = sock.recvmsg_into([buf])
        return bytes(buf[:n])
    raise AssertionError(method)


RECV_METHODS = ["recv", "recv_into", "recvfrom", "recvfrom_into", "recvmsg", "recvmsg_into"]


@pytest.mark.parametrize("method", RECV_METHODS)
def test_receive_methods_wait_for_data(tcp_pair, method):
    client, server = tcp_pair
    gt = spawn(_recv_call, server, method)
    assert parked(gt)
    client.sendall(b"payload")
    assert gt.wait() == b"payload"


@pytest.mark.parametrize("method", RECV_METHODS)
def test_receive_methods_return_ready_data_at_once(tcp_pair, method):
    client, server = tcp_pair
    client.sendall(b"ready")
    trampoline(server, read=True, timeout=5)
    server.settimeout(0.0)  # no waiting allowed: data is already there
    assert _recv_call(server, method) == b"ready"


# ----------------------------------------------------------------- sending


def test_send_sendall_and_sendmsg(tcp_pair):
    client, server = tcp_pair
    assert client.send(b"one") == 3
    client.sendall(b"two")
    assert client.sendmsg([b"th", b"ree"]) == 5
    assert recv_exactly(server, 11) == b"onetwothree"


def test_sendall_waits_for_a_slow_reader_and_delivers_everything(tcp_pair):
    client, server = tcp_pair
    data = random.Random(1).randbytes(16 << 20)  # well beyond the socket buffers
    reader = spawn(lambda: hashlib.sha256(recv_exactly(server, len(data))).hexdigest())
    client.sendall(data)
    assert reader.wait() == hashlib.sha256(data).hexdigest()


def test_sendto_and_sendmsg_on_udp():
    recv = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    send = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    with recv, send:
        recv.bind((LOCAL, 0))
        send.bind((LOCAL, 0))
        assert send.sendto(b"a", recv.getsockname()) == 1
        assert send.sendto(b"b", 0, recv.getsockname()) == 1  # the flags form
        assert send.sendmsg([b"c", b"d"], [], 0, recv.getsockname()) == 2
        got = [recv.recvfrom(10) for _ in range(3)]
        assert [data for data, _ in got] == [b"a", b"b", b"cd"]
        assert {addr for _, addr in got} == {send.getsockname()}


# ---------------------------------------------------------------- sendfile


@pytest.mark.timeout(60)
def test_sendfile_of_a_large_real_file(tcp_pair, tmp_path):
    client, server = tcp_pair
    path = tmp_path / "big.bin"
    data = os.urandom(8 << 20)
    path.write_bytes(data)

    def reader():
        digest = hashlib.sha256()
        while True:
            chunk = server.recv(1 << 20)
            if not chunk:
                return digest.hexdigest()
            digest.update(chunk)

    # The reader must run while sendfile waits for buffer space: a sendfile
    # that blocked the OS thread would deadlock here.
    gt = spawn(reader)
    with open(path, "rb") as f:
        assert client.sendfile(f) == len(data)
        assert f.tell() == len(data)
    client.shutdown(gsocket.SHUT_WR)
    assert gt.wait() == hashlib.sha256(data).hexdigest()


def test_sendfile_with_offset_and_count(tcp_pair, tmp_path):
    client, server = tcp_pair
    path = tmp_path / "part.bin"
    data = os.urandom(1 << 20)
    path.write_bytes(data)
    with open(path, "rb") as f:
        assert client.sendfile(f, offset=1000, count=300_000) == 300_000
        assert f.tell() == 301_000
    assert recv_exactly(server, 300_000) == data[1000:301_000]


def test_sendfile_falls_back_to_send_for_objects_without_a_fd(tcp_pair):
    client, server = tcp_pair
    data = os.urandom(4 << 20)
    gt = spawn(recv_exactly, server, len(data))
    assert client.sendfile(io.BytesIO(data)) == len(data)
    assert gt.wait() == data


# ---------------------------------------------------------------- makefile


def _upper_server(conn):
    with conn, conn.makefile("rwb") as f:
        for line in f:
            f.write(line.upper())
            f.flush()


def test_makefile_binary_buffered(tcp_pair):
    client, server = tcp_pair
    gt = spawn(_upper_server, server)
    with client.makefile("rwb") as f:
        for word in (b"alpha", b"beta", b"x" * 100_000):
            f.write(word + b"\n")
            f.flush()
            assert f.readline() == word.upper() + b"\n"
    client.shutdown(gsocket.SHUT_WR)
    gt.wait()  # the server saw EOF through its file


def test_makefile_text_mode(tcp_pair):
    client, server = tcp_pair
    gt = spawn(_upper_server, server)
    with client.makefile("rw", encoding="utf-8", newline="\n") as f:
        f.write("grüße\n")
        f.flush()
        assert f.readline() == "GRüßE\n"  # bytes.upper(): ASCII only
        f.write("one\ntwo\n")
        f.flush()
        assert [f.readline(), f.readline()] == ["ONE\n", "TWO\n"]
    client.shutdown(gsocket.SHUT_WR)
    gt.wait()


def test_makefile_keeps_the_fd_open_until_the_file_closes(tcp_pair):
    client, server = tcp_pair
    f = client.makefile("wb")
    client.close()  # the file still holds a reference (stdlib _io_refs rule)
    f.write(b"still open\n")
    f.flush()
    f.close()  # now the socket really closes
    assert client.fileno() == -1
    assert server.recv(100) == b"still open\n"
    assert server.recv(100) == b""


# ------------------------------------------------- shutdown, close, dup, detach


def test_half_close_peer_reads_eof_and_can_still_answer(tcp_pair):
    client, server = tcp_pair
    gt = spawn(drain, server)
    assert parked(gt)
    client.sendall(b"request")
    client.shutdown(gsocket.SHUT_WR)
    assert gt.wait() == len(b"request")  # EOF woke the waiting reader
    server.sendall(b"response")
    server.shutdown(gsocket.SHUT_WR)
    assert drain(client) == len(b"response")


def test_peer_reset_raises_connection_reset(tcp_pair):
    client, server = tcp_pair
    gt = spawn(client.recv, 10)
    assert parked(gt)
    server.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # linger 0: the kernel sends RST
    with pytest.raises(ConnectionResetError):
        gt.wait()


def test_close_is_idempotent_and_later_use_fails_with_ebadf(tcp_pair):
    client, _ = tcp_pair
    client.close()
    client.close()
    assert client.fileno() == -1
    with pytest.raises(OSError) as info:
        client.recv(1)
    assert info.value.errno == errno.EBADF


def test_closing_a_socket_wakes_its_reader_with_ioclosed(tcp_pair):
    client, _ = tcp_pair
    gt = spawn(client.recv, 10)
    assert parked(gt)
    client.close()
    with pytest.raises(OSError) as info:
        gt.wait()
    assert isinstance(info.value, IOClosed)
    assert info.value.errno == errno.EBADF


def test_closing_a_listener_wakes_its_acceptor(listener):
    gt = spawn(listener.accept)
    assert parked(gt)
    listener.close()
    with pytest.raises(IOClosed):
        gt.wait()


def test_closing_a_socket_wakes_a_blocked_writer(tcp_pair):
    client, _ = tcp_pair
    gt = spawn(client.sendall, b"w" * (64 << 20))
    assert parked(gt)  # the peer never reads: sendall waits for buffer space
    client.close()
    with pytest.raises(IOClosed):
        gt.wait()


def test_second_concurrent_reader_gets_a_clear_error(tcp_pair):
    client, server = tcp_pair
    first = spawn(server.recv, 10)
    assert parked(first)
    with pytest.raises(ConcurrentWaitError):
        server.recv(10)
    client.sendall(b"x")
    assert first.wait() == b"x"  # the first reader is unaffected


def test_dup_gives_an_independent_green_socket(tcp_pair):
    client, server = tcp_pair
    client.settimeout(3.0)
    copy = client.dup()
    try:
        assert isinstance(copy, gsocket.socket)
        assert copy.fileno() != client.fileno()
        assert copy.gettimeout() == 3.0
        client.close()
        gt = spawn(copy.recv, 100)
        assert parked(gt)
        server.sendall(b"to the copy")
        assert gt.wait() == b"to the copy"
    finally:
        copy.close()


def _leave_stale_hub_state() -> int:
    """Make the hub watch a stdlib socket's fd, then close it behind the hub's back.

    Returns the fd number, which the next socket(s) created will reuse.
    """
    a, b = stdsocket.socketpair()
    spawn(b.send, b"x")
    trampoline(a.fileno(), read=True, timeout=5)  # registers a's fd with the hub
    fd = a.fileno()
    assert fd in get_hub().fds
    a.close()  # stdlib close: the hub is not told
    b.close()
    return fd


@pytest.mark.parametrize("make", ["socketpair", "dup"])
def test_new_sockets_on_a_reused_fd_number_work(make, tcp_pair):
    # A fresh fd may reuse the number of one closed without telling the hub;
    # socketpair() and dup() must make the hub forget the old registration.
    client, server = tcp_pair
    stale = _leave_stale_hub_state()
    if make == "socketpair":
        a, b = gsocket.socketpair()
        assert stale in (a.fileno(), b.fileno())
        pairs = [(a, b), (b, a)]
        owned = [a, b]
    else:
        copy = server.dup()
        assert copy.fileno() == stale
        pairs = [(copy, client)]
        owned = [copy]
    try:
        for reader, writer in pairs:
            gt = spawn(reader.recv, 10)
            assert parked(gt)
            writer.sendall(b"hello")
            assert nettools.with_timeout(5, gt.wait) == b"hello"
    finally:
        for sock in owned:
            sock.close()


def test_detach_hands_over_the_open_fd(tcp_pair):
    client, server = tcp_pair
    fd = client.detach()
    assert client.fileno() == -1
    again = gsocket.socket(fileno=fd)
    try:
        assert again.fileno() == fd
        gt = spawn(again.recv, 100)
        assert parked(gt)
        server.sendall(b"after detach")
        assert gt.wait() == b"after detach"
    finally:
        again.close()


def test_fileno_is_the_os_fd(tcp_pair):
    client, server = tcp_pair
    fd = client.fileno()
    assert isinstance(fd, int) and fd >= 0
    os.write(fd, b"raw")  # the same kernel socket
    assert server.recv(3) == b"raw"


# ----------------------------------------------------------------- timeouts


def _timeout_ops(sock):
    yield sock.gettimeout(), sock.getblocking(), sock.timeout
    for op, arg in [
        ("settimeout", 1.5),
        ("settimeout", 0),
        ("settimeout", None),
        ("setblocking", False),
        ("setblocking", True),
        ("settimeout", 2),
    ]:
        getattr(sock, op)(arg)
        yield sock.gettimeout(), sock.getblocking(), sock.timeout


def test_timeout_accessors_match_stdlib():
    with gsocket.socket() as green, stdsocket.socket() as std:
        assert list(_timeout_ops(green)) == list(_timeout_ops(std))
        for bad in (-1, -0.5):
            with pytest.raises(ValueError):
                green.settimeout(bad)
            with pytest.raises(ValueError):
                std.settimeout(bad)


def test_default_timeout_and_sock_nonblock_match_stdlib():
    old = gsocket.getdefaulttimeout()
    try:
        gsocket.setdefaulttimeout(2.5)
        with gsocket.socket() as green, stdsocket.socket() as std:
            assert green.gettimeout() == std.gettimeout() == 2.5
    finally:
        gsocket.setdefaulttimeout(old)
    kind = gsocket.SOCK_STREAM | gsocket.SOCK_NONBLOCK
    with gsocket.socket(gsocket.AF_INET, kind) as green:
        with stdsocket.socket(stdsocket.AF_INET, kind) as std:
            assert green.gettimeout() == std.gettimeout() == 0.0


def test_recv_timeout_is_not_early_and_lets_others_run(tcp_pair):
    client, server = tcp_pair
    client.settimeout(0.3)
    with ticking() as ticks:
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="^timed out$"):
            client.recv(10)
        elapsed = time.monotonic() - start
    assert 0.3 <= elapsed < 10
    assert ticks[0] > 0
    assert isinstance(TimeoutError("x"), gsocket.timeout)
    # The socket is still usable after a timeout.
    server.sendall(b"late")
    assert client.recv(10) == b"late"


def test_non_blocking_recv_raises_blocking_io_error(tcp_pair):
    client, _ = tcp_pair
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.recv(10)
    client.settimeout(0.0)
    with pytest.raises(BlockingIOError):
        client.recv_into(bytearray(10))


def test_non_blocking_send_raises_blocking_io_error_when_full(tcp_pair):
    client, _ = tcp_pair
    fill_send_buffer(client)
    client.setblocking(False)
    with pytest.raises(BlockingIOError):
        client.send(b"more")
    with pytest.raises(BlockingIOError):
        client.sendall(b"more")


def test_accept_timeout(listener):
    listener.settimeout(0.2)
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        listener.accept()
    assert time.monotonic() - start >= 0.2
    listener.setblocking(False)
    with pytest.raises(BlockingIOError):
        listener.accept()


def test_sendall_timeout_when_the_peer_never_reads(tcp_pair):
    client, _ = tcp_pair
    client.settimeout(0.5)
    with ticking() as ticks:
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            client.sendall(b"z" * (64 << 20))
        elapsed = time.monotonic() - start
    assert 0.5 <= elapsed < 10
    assert ticks[0] > 0


def test_sendall_timeout_covers_the_whole_call_not_each_wait(tcp_pair):
    # The peer keeps reading, so no single wait for buffer space is long; only
    # a deadline for the whole sendall ends it.
    client, server = tcp_pair

    def trickle_reader():
        while True:
            if not server.recv(65536):
                return
            sleep(0.01)

    gt = spawn(trickle_reader)
    client.settimeout(0.5)
    start = time.monotonic()
    try:
        with pytest.raises(TimeoutError):
            client.sendall(b"t" * (64 << 20))
        assert time.monotonic() - start < 10
    finally:
        client.close()
        gt.kill()


# ------------------------------------------------------------ many at once


@pytest.mark.timeout(120)
def test_a_thousand_concurrent_pairs_lose_nothing():
    pairs, rounds = 1000, 20
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * pairs + 100
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors, hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))

    listener = gsocket.socket()
    listener.bind((LOCAL, 0))
    listener.listen(2048)
    addr = listener.getsockname()
    served = []

    def echo(conn):
        with conn:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)

    def acceptor():
        for _ in range(pairs):
            conn, _ = listener.accept()
            served.append(spawn(echo, conn))

    connected = [0]
    everyone_connected = Event()

    def client(seed):
        rng = random.Random(seed)
        sent, got = hashlib.sha256(), hashlib.sha256()
        with gsocket.create_connection(addr) as sock:
            connected[0] += 1
            if connected[0] == pairs:
                everyone_connected.send()
            everyone_connected.wait()  # all 1000 connections are open at once
            for _ in range(rounds):
                msg = rng.randbytes(rng.randint(1, 8192))
                sock.sendall(msg)
                sent.update(msg)
                got.update(recv_exactly(sock, len(msg)))
            sock.shutdown(gsocket.SHUT_WR)
            assert sock.recv(1) == b""
        return sent.hexdigest(), got.hexdigest()

    acc = spawn(acceptor)
    try:
        clients = [spawn(client, i) for i in range(pairs)]
        results = [gt.wait() for gt in clients]
        acc.wait()
        for gt in served:
            gt.wait()
    finally:
        acc.kill()
        listener.close()
    assert len(results) == pairs
    assert all(sent == got for sent, got in results)
    assert len({sent for sent, _ in results}) == pairs  # every client's stream differed


# ------------------------------------------------------------------- UDP


def test_udp_between_greenthreads():
    a = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    b = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    with a, b:
        a.bind((LOCAL, 0))
        b.bind((LOCAL, 0))

        def pong():
            buf = bytearray(64)
            for _ in range(5):
                n, peer = b.recvfrom_into(buf)
                b.sendto(bytes(buf[:n]).upper(), peer)

        gt = spawn(pong)
        assert parked(gt)
        for i in range(5):
            a.sendto(f"ping {i}".encode(), b.getsockname())
            data, peer = a.recvfrom(64)
            assert (data, peer) == (f"PING {i}".encode(), b.getsockname())
        gt.wait()


def test_udp_sendto_resolves_host_names():
    a = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    b = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    with a, b:
        b.bind((LOCAL, 0))
        a.sendto(b"by name", ("localhost", b.getsockname()[1]))
        data, _ = b.recvfrom(64)
        assert data == b"by name"


# ------------------------------------------------------------ unix sockets


def test_socketpair_is_green_and_works_both_ways():
    a, b = gsocket.socketpair()
    with a, b:
        assert isinstance(a, gsocket.socket) and isinstance(b, gsocket.socket)
        assert a.family == gsocket.AF_UNIX
        for x, y in ((a, b), (b, a)):
            gt = spawn(x.recv, 10)
            assert parked(gt)
            y.sendall(b"hi")
            assert gt.wait() == b"hi"


def test_unix_listener_in_tmp_path(tmp_path):
    path = str(tmp_path / "s.sock")
    listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(8)

    def server():
        conn, _ = listener.accept()
        with conn:
            conn.sendall(conn.recv(100)[::-1])

    gt = spawn(server)
    try:
        assert parked(gt)
        with gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM) as client:
            client.connect(path)
            client.sendall(b"abc")
            assert client.recv(100) == b"cba"
        gt.wait()
    finally:
        gt.kill()
        listener.close()


def test_connect_to_a_busy_unix_listener_waits_and_honours_the_timeout(tmp_path):
    # A unix listener with a full backlog answers EAGAIN instead of queueing.
    path = str(tmp_path / "busy.sock")
    listener = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(0)
    clients = []
    try:
        for _ in range(8):  # bounded: fill the backlog
            sock = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
            clients.append(sock)
            sock.setblocking(False)
            try:
                sock.connect(path)
            except BlockingIOError:
                break
        else:
            pytest.fail("the unix backlog never filled up")
        with gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM) as late:
            late.settimeout(0.3)
            start = time.monotonic()
            with pytest.raises(TimeoutError):
                late.connect(path)
            assert 0.3 <= time.monotonic() - start < 10
        waiting = gsocket.socket(gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        clients.append(waiting)
        gt = spawn(waiting.connect, path)
        assert parked(gt)
        accepted = [listener.accept()[0] for _ in range(len(clients) - 2)]
        try:
            nettools.with_timeout(10, gt.wait)  # room in the backlog: connected
            waiting.sendall(b"in")
        finally:
            for conn in accepted:
                conn.close()
    finally:
        for sock in clients:
            sock.close()
        listener.close()


def test_fd_passing_with_sendmsg_and_recvmsg():
    a, b = gsocket.socketpair()
    r, w = os.pipe()
    try:
        with a, b:
            gt = spawn(gsocket.recv_fds, b, 100, 1)
            assert parked(gt)
            gsocket.send_fds(a, [b"here"], [w])
            data, fds, _flags, _addr = gt.wait()
            assert data == b"here" and len(fds) == 1
            os.write(fds[0], b"through the passed fd")
            os.close(fds[0])
            assert os.read(r, 100) == b"through the passed fd"
            # ancillary data with the plain methods as well
            a.sendmsg([b"x"], [(gsocket.SOL_SOCKET, gsocket.SCM_RIGHTS, array.array("i", [r]))])
            msg, anc, _, _ = b.recvmsg(10, gsocket.CMSG_LEN(4))
            assert msg == b"x" and anc[0][1] == gsocket.SCM_RIGHTS
            os.close(array.array("i", anc[0][2])[0])
    finally:
        os.close(r)
        os.close(w)


# ------------------------------------------------------------------- IPv6


@needs_ipv6
def test_ipv6_loopback():
    listener = gsocket.socket(gsocket.AF_INET6, gsocket.SOCK_STREAM)
    with listener:
        listener.bind(("::1", 0))
        listener.listen(8)
        gt = spawn(listener.accept)
        with gsocket.create_connection(("::1", listener.getsockname()[1])) as client:
            conn, addr = gt.wait()
            with conn:
                assert addr[0] == "::1"
                client.sendall(b"v6")
                assert conn.recv(10) == b"v6"


# ---------------------------------------------------------------- resolver


def test_getaddrinfo_for_a_name_runs_in_the_thread_pool(monkeypatch):
    real = _socket.getaddrinfo  # the C resolver the green module calls
    threads = []

    def slow_getaddrinfo(*args):
        threads.append(threading.get_ident())
        time.sleep(0.2)  # a real blocking lookup: only the worker thread waits
        return real(*args)

    monkeypatch.setattr(_socket, "getaddrinfo", slow_getaddrinfo)
    with ticking() as ticks:
        infos = gsocket.getaddrinfo("localhost", 80, gsocket.AF_INET, gsocket.SOCK_STREAM)
    assert infos[0][4] == ("127.0.0.1", 80)
    assert threads and threads[0] != threading.get_ident()
    assert ticks[0] > 0  # the hub kept running during the lookup


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "::1", None])
def test_getaddrinfo_results_match_stdlib(host):
    args = (host, 80, 0, gsocket.SOCK_STREAM)
    green, std = gsocket.getaddrinfo(*args), stdsocket.getaddrinfo(*args)
    assert green == std
    assert [type(x) for info in green for x in info[:2]] == [
        type(x) for info in std for x in info[:2]
    ]  # AddressFamily / SocketKind enums, as stdlib


def test_numeric_lookups_are_answered_inline(monkeypatch):
    def no_threads(*args, **kwargs):
        raise AssertionError("numeric lookups must not use the thread pool")

    monkeypatch.setattr(tpool, "execute", no_threads)
    assert gsocket.gethostbyname("127.0.0.1") == "127.0.0.1"
    infos = gsocket.getaddrinfo("127.0.0.1", 80, gsocket.AF_INET, gsocket.SOCK_STREAM)
    assert infos[0][4] == ("127.0.0.1", 80)
    assert gsocket.getaddrinfo("::1", "443")[0][4][:2] == ("::1", 443)
    flags = gsocket.NI_NUMERICHOST | gsocket.NI_NUMERICSERV
    assert gsocket.getnameinfo(("127.0.0.1", 80), flags) == ("127.0.0.1", "80")


def test_gethostbyname_of_a_name():
    assert gsocket.gethostbyname("localhost") == "127.0.0.1"


# ------------------------------------------------------- module functions


def test_create_connection_and_create_server_are_green():
    server = gsocket.create_server((LOCAL, 0))
    with server:
        assert isinstance(server, gsocket.socket)
        port = server.getsockname()[1]
        gt = spawn(server.accept)
        # by name: localhost may resolve to ::1 first (refused), then 127.0.0.1
        client = gsocket.create_connection(("localhost", port), timeout=4.0)
        with client:
            assert isinstance(client, gsocket.socket)
            assert client.gettimeout() == 4.0
            conn, _ = gt.wait()
            with conn:
                assert isinstance(conn, gsocket.socket)
                client.sendall(b"cc")
                assert conn.recv(2) == b"cc"


def test_create_connection_raises_the_connect_error():
    holder, addr = _refused_address()
    with holder, pytest.raises(ConnectionRefusedError):
        gsocket.create_connection(addr)


def test_fromfd_returns_a_green_socket_on_a_duplicate():
    std_a, std_b = stdsocket.socketpair()
    with std_a, std_b:
        green = gsocket.fromfd(std_a.fileno(), gsocket.AF_UNIX, gsocket.SOCK_STREAM)
        with green:
            assert isinstance(green, gsocket.socket)
            assert green.fileno() != std_a.fileno()
            gt = spawn(green.recv, 10)
            assert parked(gt)
            std_b.sendall(b"fromfd")
            assert gt.wait() == b"fromfd"


def read_with(how: str):
    """``sock.recv(65536)``, or the same through ``recv_into`` a buffer."""
    if how == "recv":
        return lambda sock: sock.recv(65536)
    view = memoryview(bytearray(65536))
    return lambda sock: bytes(view[: sock.recv_into(view)])


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["recv", "recv_into"])
def test_recv_after_a_short_read_sees_a_fin_that_came_with_the_data(tcp_pair, how):
    # Data and FIN both arrive before the reader wakes: after the short read no
    # further epoll edge will come, so the next recv must not wait for one.
    client, conn = tcp_pair
    read = read_with(how)
    conn.settimeout(5)
    first = spawn(read, conn)
    assert parked(first)  # the reader is parked on the hub
    client.sendall(b"last words")
    client.shutdown(gsocket.SHUT_WR)  # both reach it before the hub polls again
    assert first.wait() == b"last words"
    assert read(conn) == b""  # at once, not after the 5 s timeout


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["recv", "recv_into"])
def test_recv_after_a_short_read_waits_for_data_sent_later(tcp_pair, how):
    client, conn = tcp_pair
    read = read_with(how)
    conn.settimeout(5)
    client.sendall(b"first")
    assert read(conn) == b"first"  # a short read: the socket is drained
    spawn(lambda: (sleep(0.05), client.sendall(b"second")))
    assert read(conn) == b"second"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["recv", "recv_into"])
def test_recv_after_a_short_read_still_times_out(tcp_pair, how):
    client, conn = tcp_pair
    read = read_with(how)
    client.sendall(b"first")
    assert read(conn) == b"first"  # a short read: the next one waits first
    conn.settimeout(0.05)
    with pytest.raises(TimeoutError):
        read(conn)
    client.sendall(b"after")
    assert read(conn) == b"after"


@pytest.mark.timeout(20)
def test_wait_if_drained_parks_after_a_short_read_until_data_comes(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(5)
    view = memoryview(bytearray(65536))
    first = spawn(conn.recv_into, view)
    assert parked(first)  # woken by the hub: no edge is left recorded
    client.sendall(b"first")
    assert first.wait() == len(b"first")  # a short read
    waiter = spawn(conn.wait_if_drained)
    assert parked(waiter)  # nothing can be there: it waits instead of reading
    client.sendall(b"second")
    waiter.wait()
    assert bytes(view[: conn.recv_into(view)]) == b"second"


@pytest.mark.timeout(20)
def test_wait_if_drained_returns_at_once_when_a_read_may_find_something(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(5)
    hub = get_hub()
    switches = hub.switches
    conn.wait_if_drained()  # nothing read yet: nothing known
    assert hub.switches == switches
    small = memoryview(bytearray(4))
    client.sendall(b"12345678")
    assert conn.recv_into(small) == 4  # a full read: more may be queued
    switches = hub.switches
    conn.wait_if_drained()
    assert hub.switches == switches
    assert bytes(small[: conn.recv_into(small)]) == b"5678"
    # Data and FIN reach it while a reader is parked: after the short read no
    # further edge will come, and the FIN says a read will find the end.
    view = memoryview(bytearray(65536))
    first = spawn(conn.recv_into, view)
    assert parked(first)
    client.sendall(b"last words")
    client.shutdown(gsocket.SHUT_WR)
    assert first.wait() == len(b"last words")
    switches = hub.switches
    conn.wait_if_drained()
    # (The poll(2) fallback records no edges nor FIN: it waits, and the level
    # it polls is there at once.)
    if type(hub.poller).__name__ == "EpollPoller":
        assert hub.switches == switches
    assert conn.recv_into(view) == 0


@pytest.mark.timeout(20)
def test_recv_after_a_short_read_gets_data_that_came_before_the_hub_knew_the_socket(tcp_pair):
    # Both reads find their data without waiting, so the hub has no record of the
    # socket when the second recv starts: the record it makes then must report
    # the data already queued, or the reader would wait for an edge never coming.
    client, conn = tcp_pair
    conn.settimeout(5)
    probe = select_module.poll()
    probe.register(conn.fileno(), select_module.POLLIN)
    client.sendall(b"first")
    assert probe.poll(5000)  # queued (a plain poll: the hub hears nothing of it)
    assert conn.recv(65536) == b"first"  # a short read: the socket is drained
    client.sendall(b"second")
    assert probe.poll(5000)
    assert conn.fileno() not in get_hub().fds
    assert conn.recv(65536) == b"second"  # at once, not a 5 s timeout


@pytest.mark.parametrize("method", ["recv", "recv_into"])
def test_a_parked_reader_holds_no_exception(tcp_pair, method):
    # The EAGAIN that sent the reader to the hub is gone once it waits: a server
    # with thousands of idle connections would keep thousands of them otherwise.
    client, conn = tcp_pair
    gt = spawn(_recv_call, conn, method)
    assert parked(gt)
    # type(), not isinstance(): a dead weakref.proxy among the objects raises on isinstance.
    errors = [o for o in gc.get_objects() if issubclass(type(o), BlockingIOError)]
    assert not [e for e in errors if any(r is gt.greenlet for r in gc.get_referrers(e))]
    client.sendall(b"x")
    assert gt.wait() == b"x"


# Timed reads share one timer per socket (kernel.fdwait.ReadDeadline).


def test_timed_reads_share_one_timer_and_leave_none_live(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(30)
    hub = get_hub()
    live = hub.live_timers()
    heap = []
    for _ in range(20):
        spawn(client.sendall, b"x")  # runs once the reader waits
        assert conn.recv(10) == b"x"
        heap.append(len(hub.timers))
    assert heap[-1] == heap[0]  # not a timer made (and cancelled) per wait
    assert hub.live_timers() == live  # between reads, the timer wakes no one


def test_a_shorter_timeout_after_a_longer_one_ends_the_read_in_time(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(30)
    spawn(client.sendall, b"a")
    assert conn.recv(10) == b"a"  # leaves a timer due in 30 s
    conn.settimeout(0.05)
    with pytest.raises(TimeoutError):
        nettools.with_timeout(10, conn.recv, 10)  # nettools.Timeout is no TimeoutError


def test_a_timer_left_by_a_timed_read_never_ends_an_untimed_one(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(0.05)
    spawn(client.sendall, b"a")
    assert conn.recv(10) == b"a"  # leaves a timer due in 50 ms
    conn.settimeout(None)
    nettools.spawn_after(0.3, client.sendall, b"b")
    assert conn.recv(10) == b"b"


def test_a_timed_read_outlasting_an_earlier_reads_timer_gets_its_own_time(tcp_pair):
    client, conn = tcp_pair
    conn.settimeout(1.0)
    spawn(client.sendall, b"a")
    assert conn.recv(10) == b"a"  # the timer fires 1 s from now
    sleep(0.6)
    nettools.spawn_after(0.6, client.sendall, b"b")  # 1.2 s from the first read
    assert conn.recv(10) == b"b"  # due 1.6 s from the first read, not 1 s


def _pipe_on(fd: int) -> tuple[int, int]:
    """A non-blocking pipe whose read end is ``fd`` (a free number)."""
    r, w = os.pipe()
    if r != fd:
        os.dup2(r, fd)
        os.close(r)
    for end in (fd, w):
        os.set_blocking(end, False)
    return fd, w


def test_a_socket_collected_unclosed_leaves_no_stale_record_behind():
    # A handler killed mid-handshake drops its socket unclosed: the finaliser
    # closes the fd, and the hub must forget it first, or a raw pipe that
    # reuses the number would wait on a record epoll no longer reports.
    import gc

    from nettools.green import os as gos

    a, b = gsocket.socketpair()
    reader = spawn(a.recv, 10)
    assert parked(reader)
    fd = a.fileno()
    assert fd in get_hub().fds
    reader.kill()
    del reader, a
    gc.collect()
    assert fd not in get_hub().fds
    b.close()
    r, w = _pipe_on(fd)
    try:
        nettools.spawn_after(0.05, os.write, w, b"x")
        assert nettools.with_timeout(5, gos.read, r, 10) == b"x"
    finally:
        for end in (r, w):
            get_hub().notify_close(end)
            os.close(end)


@pytest.mark.parametrize("wait", ["os.read", "trampoline", "select"])
def test_a_record_left_by_a_close_behind_the_hubs_back_is_found_stale(wait):
    # Closed where this hub cannot hear of it (a raw close, another thread's
    # collector): the waits on fds nettools did not open check the record first.
    from nettools.green import os as gos
    from nettools.green import select as gselect

    fd = _leave_stale_hub_state()
    assert fd in get_hub().fds
    r, w = _pipe_on(fd)
    try:
        nettools.spawn_after(0.05, os.write, w, b"x")
        with nettools.Timeout(5):
            if wait == "os.read":
                assert gos.read(r, 10) == b"x"
            elif wait == "trampoline":
                trampoline(r, read=True)
            else:
                assert gselect.select([r], [], [], 5)[0] == [r]
    finally:
        for end in (r, w):
            get_hub().notify_close(end)
            os.close(end)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["recv", "recv_into"])
def test_recv_on_a_datagram_socket_reads_every_queued_datagram(how):
    # A datagram socket returns one datagram per recv, shorter than the buffer
    # while more wait behind it: a short read there says nothing about the
    # queue, and the next recv must not wait for an edge that never comes.
    read = read_with(how)
    receiver = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_DGRAM)
    sender = stdsocket.socket(stdsocket.AF_INET, stdsocket.SOCK_DGRAM)
    with receiver, sender:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        first = spawn(read, receiver)
        assert parked(first)
        for word in (b"one", b"two", b"three"):  # all queued before the hub polls again
            sender.sendto(word, receiver.getsockname())
        assert first.wait() == b"one"
        assert read(receiver) == b"two"  # at once, not after the 5 s timeout
        assert read(receiver) == b"three"


def test_recv_on_a_closed_socket_after_a_short_read_is_ebadf(tcp_pair):
    # As the standard socket: after close, recv raises OSError (EBADF), also
    # when the last read was short (the path that would wait first).
    client, conn = tcp_pair
    conn.settimeout(5)
    client.sendall(b"abc")
    assert conn.recv(1024) == b"abc"  # a short read
    conn.close()
    with pytest.raises(OSError) as caught:
        conn.recv(1024)
    assert caught.value.errno == errno.EBADF
