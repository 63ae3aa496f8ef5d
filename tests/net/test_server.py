"""net.Server, serve and StopServe: the accept loop every nettools server shares."""

from __future__ import annotations

import errno
import logging
import os
import queue as stdqueue
import select
import signal
import socket as stdsocket
import struct
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from helpers.green import settle
from helpers.sockets import ipv6_available, recv_all
from helpers.tls import Certs

import nettools
from nettools import Event, GreenPool, Queue, Server, StopServe, Timeout, sleep, spawn
from nettools.green import socket as gsocket

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"


@pytest.fixture
def listener():
    sock = nettools.listen((LOCAL, 0))
    yield sock
    sock.close()


def start(servers, sock, handle, **kw) -> Server:
    server = Server(sock, handle, **kw).start()
    servers.append(server)
    return server


# ------------------------------------------------------------- concurrency


@pytest.mark.timeout(120)
def test_pool_limit_holds_under_five_thousand_connections(listener, servers):
    limit, attempts = 50, 5000
    running = peak = 0

    def handle(conn, addr):
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            sleep(0.002)  # hold the connection a little
            conn.sendall(b"ok")
        finally:
            running -= 1

    server = start(servers, listener, handle, concurrency=limit)
    addr = server.address

    def client(_):
        with gsocket.create_connection(addr) as sock:
            return recv_all(sock)

    # 500 clients in flight: ten times the server's limit, within the backlog.
    replies = list(GreenPool(500).imap(client, range(attempts)))
    assert replies == [b"ok"] * attempts
    assert server.accepted == attempts
    assert peak == limit  # reached, never exceeded


def test_accept_pauses_while_full_and_resumes_by_itself(listener, servers):
    release = Event()
    started: Queue = Queue()

    def handle(conn, addr):
        started.put(addr)
        release.wait()
        conn.sendall(b"bye")

    server = start(servers, listener, handle, concurrency=2)
    clients = [nettools.connect(server.address) for _ in range(3)]
    try:
        started.get(timeout=5)
        started.get(timeout=5)
        # The acceptor parks on the full pool (a spinning one never settles);
        # then give one that backs off on a timer time to misbehave before looking.
        settle()
        assert server.pool.waiting()
        sleep(0.05)
        assert server.accepted == 2
        assert server.pool.running() == 2
        poller = select.poll()
        poller.register(listener.fileno(), select.POLLIN)
        assert poller.poll(0), "the third connection should still wait in the backlog"

        release.send()  # the two handlers finish; the third is accepted on its own
        started.get(timeout=5)
        assert [recv_all(c) for c in clients] == [b"bye"] * 3
        assert server.accepted == 3
    finally:
        for c in clients:
            c.close()


# ------------------------------------------------------------------ stopping


def test_stop_lets_an_in_flight_handler_finish(listener, servers):
    started, proceed = Event(), Event()
    finished = []

    def handle(conn, addr):
        started.send()
        proceed.wait()
        conn.sendall(b"done")
        finished.append(addr)

    server = start(servers, listener, handle)
    addr = server.address
    client = nettools.connect(addr)
    with client:
        started.wait()
        stopper = spawn(server.stop, 30)
        settle()  # the stopper closes the listener at once, then waits for the handler
        with pytest.raises(ConnectionRefusedError):
            nettools.connect(addr)
        assert not stopper.dead  # still draining the in-flight handler
        proceed.send()
        stopper.wait()
        assert server.stopped
        assert finished and recv_all(client) == b"done"


def test_stop_kills_handlers_still_running_after_the_timeout(listener, servers):
    started = Event()
    outcome = []

    def handle(conn, addr):
        started.send()
        try:
            conn.recv(10)  # the client never sends
            outcome.append("returned")
        except nettools.GreenletExit:
            outcome.append("killed")
            raise
        finally:
            outcome.append("finally")

    server = start(servers, listener, handle)
    with nettools.connect(server.address) as client:
        started.wait()
        begin = time.monotonic()
        server.stop(0.2)
        assert 0.2 <= time.monotonic() - begin < 10
        assert outcome == ["killed", "finally"]
        assert recv_all(client) == b""  # the server closed the connection
        assert server.pool.running() == 0


def test_stop_closes_idle_connections_at_once(listener, servers):
    proceed, busy_started, idle_done = Event(), Event(), Event()
    results = {}

    def handle(conn, addr):
        while True:
            server.set_idle(conn, True)  # waiting for the next request
            data = conn.recv(100)
            server.set_idle(conn, False)
            if not data:
                results["idle"] = "eof"
                idle_done.send()
                return
            if data == b"busy":
                busy_started.send()
                proceed.wait()
                conn.sendall(b"finished")
                results["busy"] = "finished"
                return
            conn.sendall(data)

    server = start(servers, listener, handle)
    idle = nettools.connect(server.address)
    busy = nettools.connect(server.address)
    with idle, busy:
        idle.sendall(b"ping")
        assert idle.recv(10) == b"ping"  # its handler is idle again now
        busy.sendall(b"busy")
        busy_started.wait()  # read by its handler: no longer idle
        stopper = spawn(server.stop, 30)
        with Timeout(10):
            idle_done.wait()  # not 30 s later: shut down as soon as stop began
        assert not stopper.dead  # the busy handler still runs
        proceed.send()
        with Timeout(10):
            stopper.wait()
        assert results == {"idle": "eof", "busy": "finished"}
        assert recv_all(busy) == b"finished"
        assert recv_all(idle) == b""


def test_set_idle_after_stop_began_closes_at_once(listener, servers):
    started, proceed = Event(), Event()
    got = []

    def handle(conn, addr):
        started.send()
        proceed.wait()
        server.set_idle(conn, True)  # the stop has begun: shut down now
        got.append(conn.recv(10))

    server = start(servers, listener, handle)
    with nettools.connect(server.address):
        started.wait()
        stopper = spawn(server.stop, 30)
        settle()
        proceed.send()
        with Timeout(10):
            stopper.wait()
        assert got == [b""]


# ------------------------------------------------------------------ errors


def test_handler_exceptions_are_logged_and_the_server_lives_on(listener, servers, caplog):
    def handle(conn, addr):
        data = conn.recv(100)
        if data == b"boom":
            raise ValueError("boom")
        conn.sendall(b"ok:" + data)

    server = start(servers, listener, handle)
    with caplog.at_level(logging.ERROR, logger="nettools.server"):
        with nettools.connect(server.address) as bad:
            bad.sendall(b"boom")
            assert recv_all(bad) == b""  # closed in the server's finally
        with nettools.connect(server.address) as good:
            good.sendall(b"hi")
            assert recv_all(good) == b"ok:hi"
    records = [r for r in caplog.records if r.name == "nettools.server"]
    assert len(records) == 1
    assert records[0].levelno == logging.ERROR
    assert "error handling 127.0.0.1:" in records[0].getMessage()
    assert records[0].exc_info[0] is ValueError
    assert server.errors == 1 and not server.stopped


@pytest.fixture
def tls_contexts():
    """Green server and client TLS contexts for ``localhost``, trusting one test CA."""
    certs = Certs("localhost")
    return certs.server_context(), certs.client_context(green=True)


def test_a_tls_listener_survives_clients_whose_handshake_fails(servers, tls_contexts):
    # One client hanging up, resetting or speaking plain text instead of
    # completing the TLS handshake must not stop the server.
    server_ctx, client_ctx = tls_contexts
    tls_listener = server_ctx.wrap_socket(nettools.listen((LOCAL, 0)), server_side=True)

    handled = []

    def handle(conn, addr):
        handled.append(addr)
        conn.sendall(b"hello over tls")

    server = start(servers, tls_listener, handle)
    with gsocket.create_connection(server.address):
        pass  # a TCP health check: connect, close
    reset = gsocket.create_connection(server.address)
    reset.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_LINGER, struct.pack("ii", 1, 0))
    reset.close()
    with gsocket.create_connection(server.address) as plain:
        plain.sendall(b"GET / HTTP/1.0\r\n\r\n")
        try:
            recv_all(plain)
        except ConnectionResetError:
            pass
    raw = gsocket.create_connection(server.address)
    with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert recv_all(tls) == b"hello over tls"
    assert not server.stopped
    assert server.accepted == 4
    assert len(handled) == 1  # only the real TLS client reached the handler


def test_a_tls_client_that_never_handshakes_delays_nobody(servers, tls_contexts):
    server_ctx, client_ctx = tls_contexts

    def handle(conn, addr):
        conn.sendall(b"hello over tls")

    server = nettools.Server(
        nettools.listen((LOCAL, 0)), handle, 10, ssl_context=server_ctx, handshake_timeout=30
    )
    servers.append(server.start())
    silent = gsocket.create_connection(server.address)  # connects, never says a word
    try:
        raw = gsocket.create_connection(server.address)
        raw.settimeout(5)
        with client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            assert recv_all(tls) == b"hello over tls"
    finally:
        silent.close()


def test_serve_returns_on_stop_serve(listener):
    def handle(conn, addr):
        data = conn.recv(100)
        if data == b"stop":
            raise StopServe()
        conn.sendall(data)

    def clients():
        with nettools.connect(listener.getsockname()) as c:
            c.sendall(b"echo")
            assert recv_all(c) == b"echo"
        with nettools.connect(listener.getsockname()) as c:
            c.sendall(b"stop")
            return recv_all(c)

    gt = spawn(clients)
    with Timeout(20):
        assert nettools.serve(listener, handle) is None
    assert gt.wait() == b""


def test_serve_reraises_other_handler_exceptions(listener):
    def handle(conn, addr):
        raise KeyError("from the handler")

    def client():
        with nettools.connect(listener.getsockname()) as c:
            return recv_all(c)

    gt = spawn(client)
    with Timeout(20), pytest.raises(KeyError, match="from the handler"):
        nettools.serve(listener, handle)
    assert gt.wait() == b""


def test_a_handler_that_leaves_data_unread_closes_without_a_reset(listener, servers):
    # Closing with unread data would reset the connection: the client would get
    # ECONNRESET (and over a real network could lose the reply) instead of EOF.
    sent = Event()

    def handler(conn, addr):
        sent.wait()  # the client's bytes are in our receive queue now
        conn.sendall(b"bye")

    start(servers, listener, handler)
    client = nettools.connect(listener.getsockname())
    try:
        client.sendall(b"unread by the handler")
        sent.send()
        with Timeout(10):
            assert recv_all(client) == b"bye"  # then a clean end of file
    finally:
        client.close()


def test_a_socket_that_is_not_listening_is_refused_at_start():
    sock = gsocket.socket()
    try:
        sock.bind((LOCAL, 0))
        server = Server(sock, lambda conn, addr: None)
        with pytest.raises(OSError, match="Invalid argument: the socket is not listening") as info:
            server.start()
        assert info.value.errno == errno.EINVAL
        sock.listen()
        server.start().close()  # listening now: it starts
    finally:
        sock.close()


def test_a_listener_shut_down_behind_the_servers_back_stops_it_quietly(listener):
    server = Server(listener, lambda conn, addr: None).start()
    settle()  # the accept loop waits in accept()
    listener.shutdown(gsocket.SHUT_RDWR)
    with Timeout(10):
        server.serve_forever()  # returns: no error


# ---------------------------------------------------------- socket options


@pytest.mark.parametrize("nodelay", [True, False])
def test_tcp_nodelay_on_accepted_sockets(listener, servers, nodelay):
    def handle(conn, addr):
        value = conn.getsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY)
        conn.sendall(b"1" if value else b"0")

    server = start(servers, listener, handle, nodelay=nodelay)
    with nettools.connect(server.address) as c:
        assert recv_all(c) == (b"1" if nodelay else b"0")


# ---------------------------------------------------------------- families


def _echo_handler(conn, addr):
    while True:
        data = conn.recv(65536)
        if not data:
            return
        conn.sendall(data)


@pytest.mark.parametrize("family", ["ipv4", "ipv6", "unix"])
def test_server_on_each_address_family(family, servers, tmp_path):
    if family == "ipv4":
        fam, addr = gsocket.AF_INET, (LOCAL, 0)
    elif family == "ipv6":
        if not ipv6_available():
            pytest.skip("IPv6 loopback ::1 unavailable")
        fam, addr = gsocket.AF_INET6, ("::1", 0)
    else:
        fam, addr = gsocket.AF_UNIX, str(tmp_path / "server.sock")
    sock = nettools.listen(addr, family=fam)
    server = start(servers, sock, _echo_handler, concurrency=10)
    clients = [nettools.connect(server.address, family=fam) for _ in range(5)]
    try:
        for i, c in enumerate(clients):
            c.sendall(f"hello {i}".encode() * 1000)
        for i, c in enumerate(clients):
            c.shutdown(gsocket.SHUT_WR)
            assert recv_all(c) == f"hello {i}".encode() * 1000
    finally:
        for c in clients:
            c.close()
    server.stop(5)
    assert server.accepted == 5


# --------------------------------------------------------- subprocess tests


def _spawn_python(code: str, **kw) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kw,
    )


class _LineCollector:
    """Reads a pipe in a thread so the test can wait for a line with a timeout."""

    def __init__(self, pipe) -> None:
        self.lines: list[str] = []
        self._queue: stdqueue.SimpleQueue = stdqueue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, args=(pipe,), daemon=True)
        self._thread.start()

    def _run(self, pipe) -> None:
        for line in pipe:
            self.lines.append(line)
            self._queue.put(line)

    def wait_for(self, text: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        for line in list(self.lines):
            if text in line:
                return line
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} not seen; got {''.join(self.lines)!r}")
            try:
                line = self._queue.get(timeout=left)
            except stdqueue.Empty:
                continue
            if text in line:
                return line

    def count(self, text: str) -> int:
        return sum(text in line for line in list(self.lines))


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(10)


FD_LIMIT_SERVER = """
    import logging, resource, sys
    import nettools

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")

    def handle(conn, addr):
        conn.sendall(b"hi")
        while conn.recv(100):
            pass

    server = nettools.Server(nettools.listen(("127.0.0.1", 0)), handle, concurrency=1000)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
    server.install_signal_handlers(drain_timeout=5)
    print(server.address[1], flush=True)
    server.serve_forever()
    print("stopped", flush=True)
"""


def _greeted(clients, timeout: float) -> list:
    """The clients whose 'hi' arrives within ``timeout`` (each greeting consumed)."""
    greeted = []
    pending = list(clients)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        readable, _, _ = select.select(pending, [], [], left)
        for c in readable:
            assert c.recv(2) == b"hi"
            greeted.append(c)
            pending.remove(c)
    return greeted


@pytest.mark.timeout(90)
def test_out_of_fds_backs_off_and_recovers():
    proc = _spawn_python(FD_LIMIT_SERVER)
    clients: list[stdsocket.socket] = []
    try:
        stderr = _LineCollector(proc.stderr)
        port = int(proc.stdout.readline())
        for _ in range(80):  # more than the 64 fds the server may have
            clients.append(stdsocket.create_connection((LOCAL, port), timeout=10))
        stderr.wait_for("accept failed", timeout=20)

        # While out of fds: the server sleeps between attempts instead of spinning.
        wall0, cpu0 = time.monotonic(), _cpu_seconds(proc.pid)
        greeted = _greeted(clients, timeout=1.5)
        wall1, cpu1 = time.monotonic(), _cpu_seconds(proc.pid)
        assert 20 < len(greeted) < len(clients)
        assert cpu1 - cpu0 < 0.5 * (wall1 - wall0), "the accept loop is spinning"
        warnings = stderr.count("accept failed")
        assert 1 <= warnings < 40
        assert all("Too many open files" in line for line in stderr.lines if "accept" in line)

        # Free some fds: the clients left in the backlog are served by themselves.
        for c in greeted[:30]:
            c.close()
            clients.remove(c)
        waiting = [c for c in clients if c not in greeted]
        assert len(_greeted(waiting, timeout=20)) == len(waiting)
        with stdsocket.create_connection((LOCAL, port), timeout=10) as late:
            assert late.recv(2) == b"hi"

        for c in clients:
            c.close()
        clients.clear()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        assert proc.stdout.read().strip() == "stopped"
    finally:
        for c in clients:
            c.close()
        _kill(proc)


SIGNAL_SERVER = """
    import logging, sys
    import nettools

    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(levelname)s %(name)s %(message)s")

    def handle(conn, addr):
        try:
            conn.sendall(b"started\\n")
            data = conn.recv(100)  # the request finishes when the client says so
            if data:
                conn.sendall(b"done:" + data)
        except ConnectionError:
            pass  # one of the test's probes that hung up at once

    server = nettools.Server(nettools.listen(("127.0.0.1", 0)), handle)
    server.install_signal_handlers(drain_timeout=30)
    print(server.address[1], flush=True)
    server.serve_forever()
    print("drained", flush=True)
"""


@pytest.mark.timeout(60)
def test_sigterm_drains_in_flight_requests_then_exits_cleanly():
    proc = _spawn_python(SIGNAL_SERVER)
    try:
        stderr = _LineCollector(proc.stderr)
        port = int(proc.stdout.readline())
        with stdsocket.create_connection((LOCAL, port), timeout=20) as client:
            assert client.recv(100) == b"started\n"  # a request is in flight
            proc.send_signal(signal.SIGTERM)
            stderr.wait_for("signal 15 received", timeout=20)
            # The listener closes soon; the server keeps running for the request.
            for _ in range(200):
                try:
                    stdsocket.create_connection((LOCAL, port), timeout=5).close()
                except (ConnectionRefusedError, ConnectionResetError):
                    # Refused once closed; reset if it was queued in the backlog
                    # at the moment the listener closed.
                    break
                time.sleep(0.05)
            else:
                pytest.fail("the listener stayed open after SIGTERM")
            assert proc.poll() is None
            client.sendall(b"finish")
            assert recv_all(client) == b"done:finish"
        assert proc.wait(20) == 0
        assert proc.stdout.read().strip() == "drained"
        assert "Traceback" not in "".join(stderr.lines)
    finally:
        _kill(proc)


# ---------------------------------------------------------------- counters


def test_the_counters_say_why_connections_ended(listener, servers):
    said = {b"idle": "idle", b"deny": None}

    def handle(conn, addr):
        word = conn.recv(16)
        if word == b"boom":
            raise ValueError("a handler bug")
        if word == b"deny":
            server.refuse(conn, "denied")
        elif word in said:
            server.end_reason(conn, said[word])
        elif word == b"wait":
            conn.recv(16)  # until the stop shuts it

    server = start(servers, listener, handle)
    for word in (b"", b"idle", b"deny", b"boom", b"x"):
        with gsocket.create_connection(server.address) as sock:
            sock.sendall(word)
            sock.shutdown(gsocket.SHUT_WR)
            recv_all(sock)
    waiting = gsocket.create_connection(server.address)
    waiting.sendall(b"wait")
    settle()
    assert server.active == 1 and server.accepted == 6
    server.stop(1)
    waiting.close()
    assert server.closed == {"client": 2, "idle": 1, "error": 1, "stopped": 1}
    assert server.refused == {"denied": 1}
    assert server.errors == 1 and server.active == 0


def test_the_counters_see_a_full_pool_and_failed_tls_handshakes(servers, tls_contexts):
    server_ctx, client_ctx = tls_contexts
    gate = Event()
    server = start(servers, nettools.listen((LOCAL, 0)), lambda conn, addr: gate.wait(),
                   concurrency=1, ssl_context=server_ctx)
    first = gsocket.create_connection(server.address)  # fails its handshake: plain text
    first.sendall(b"GET / HTTP/1.0\r\n\r\n")
    try:
        recv_all(first)
    except ConnectionResetError:
        pass  # the server may reset a plain-text client
    first.close()
    assert server.tls_failures == 1 and server.closed == {"error": 1}
    assert server.max_conns == 1
    # A handshake happens before the pool: a client that completed one takes the only slot.
    held = client_ctx.wrap_socket(gsocket.create_connection(server.address),
                                  server_hostname="localhost")
    second = gsocket.create_connection(server.address)
    settle()
    assert server.limit_reached >= 1
    held.close()
    second.close()
    gate.send(None)
