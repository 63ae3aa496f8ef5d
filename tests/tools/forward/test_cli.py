"""``nettools forward`` through its real entry point, with real sockets.

The forwarder runs as ``python -m nettools forward`` in a subprocess; the
targets and clients are stdlib blocking sockets in threads of the test
process, so the forwarder talks to unmodified peers.  Loopback only, port 0.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import resource
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers.cli import clean_env, run_cli, stop_summary
from helpers.paths import ROOT
from helpers.sockets import (
    Target,
    echo_handler,
    echo_through,
    ipv6_available,
    parse_address,
    recv_all,
    recv_exactly,
    try_echo_through,
)
from helpers.tls import Certs

pytestmark = pytest.mark.timeout(60)

LOCAL = "127.0.0.1"
MiB = 1 << 20


# ------------------------------------------------------------------ helpers


class Forward:
    """``nettools forward ARGS`` in a subprocess; killed on exit from ``with``.

    stderr goes to a file: a forwarder logs a line per connection, and a full
    stderr pipe nobody reads would stall it.
    """

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self._err = tempfile.TemporaryFile(mode="w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nettools", "forward", *args],
            stdout=subprocess.PIPE,
            stderr=self._err,
            text=True,
            env=clean_env(env),
        )
        # A thread reads stdout: select() on a buffered pipe misses lines
        # already sitting in the buffer.
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def __enter__(self) -> Forward:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)
        self.proc.stdout.close()
        self._err.close()

    def ready(self, count: int = 1, timeout: float = 20) -> list[dict]:
        """The ``listening`` lines, one per rule."""
        events = []
        deadline = time.monotonic() + timeout
        while len(events) < count:
            try:
                line = self._lines.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(
                    f"no ready line within {timeout}s; stderr: {self.stderr()}"
                ) from None
            if not line:
                raise AssertionError(f"forwarder exited early; stderr: {self.stderr()}")
            events.append(json.loads(line))
        return events

    def addr(self, timeout: float = 20) -> tuple[str, int]:
        return parse_address(self.ready(1, timeout)[0]["address"])

    def stderr(self) -> str:
        self._err.flush()
        self._err.seek(0)
        return self._err.read()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> tuple[int, str]:
        """Send ``sig`` and wait: ``(returncode, stderr)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout: float = 20) -> tuple[int, str]:
        """Wait for the forwarder to exit: ``(returncode, stderr)``."""
        self.proc.wait(timeout)
        return self.proc.returncode, self.stderr()

    def wait_log(self, needle: str, timeout: float = 10) -> str:
        """Wait until stderr contains ``needle``; returns all of stderr."""
        deadline = time.monotonic() + timeout
        while True:
            err = self.stderr()
            if needle in err:
                return err
            if time.monotonic() > deadline:
                raise AssertionError(f"{needle!r} not logged within {timeout}s; stderr: {err}")
            time.sleep(0.02)


# --------------------------------------------------------- start and arguments


def test_ready_line_per_rule_with_target_and_traffic_through_each(echo_target, tmp_path):
    ready_file = tmp_path / "ready.jsonl"
    rules = [f"0:{echo_target.port}", f"{LOCAL}:0:{LOCAL}:{echo_target.port}"]
    with Forward(*rules, "--ready-file", str(ready_file)) as fwd:
        events = fwd.ready(2)
        for event in events:
            assert event["event"] == "listening" and event["service"] == "forward"
            assert event["target"] == f"{LOCAL}:{echo_target.port}"
        deadline = time.monotonic() + 10  # the file is written just after stdout
        while len(ready_file.read_text().splitlines()) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [json.loads(x) for x in ready_file.read_text().splitlines()] == events
        for i, event in enumerate(events):
            assert echo_through(parse_address(event["address"]), b"rule %d" % i) == b"rule %d" % i
        code, err = fwd.stop()
    assert code == 0, err
    assert "Traceback" not in err
    assert echo_target.accepted == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["7000"], "missing target port"),
        (["7000:"], "missing target port"),
        (["a:b:c:d:e"], "invalid"),
        (["::1:7000:22"], "brackets"),
        (["70000:22"], "out of range"),
        (["7000:65536"], "out of range"),
        (["7000:127.0.0.1:0"], "target port cannot be 0"),
        (["7000:nosuch.invalid:22"], "cannot resolve 'nosuch.invalid'"),
        (["nosuch.invalid:7000:22"], "cannot resolve 'nosuch.invalid'"),
        (["0:22", "--allow", "10.0.0.300/8"], "invalid network"),
        (["0:22", "--connect-timeout", "soon"], "invalid duration"),
        (["0:22", "--tls-key", "k.pem"], "--tls-key needs --tls-cert"),
        (["0:22", "--tls-cert", "/nonexistent/cert.pem"], "cannot load --tls-cert"),
        (["0:22", "--tls-target-ca", "ca.pem"], "need --tls-target"),
        ([], "give at least one RULE, --rules FILE or --api"),
        (["0:22", "--toxic", "latency:latency=x"], "invalid toxic"),
        (["0:22", "--toxic", "nosuch"], "invalid toxic type"),
        (["0:22", "--toxic", "latency:rule=db"], "names rule 'db', which is not there"),
        (["0:22", "--balance", "random"], "invalid balance"),
        (["0:22", "--proxy-protocol", "v3"], "invalid PROXY protocol version"),
        (["0:22", "--rules", "/nonexistent/rules.toml"], "cannot read /nonexistent/rules.toml"),
        (["udp:0:53", "--tls-target"], "TLS options apply to TCP rules"),
        (["--api", "localhost"], "invalid"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(args, message):
    res = run_cli("forward", *args)
    assert res.returncode == 2, res
    assert res.stdout == ""
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert message in lines[0]
    assert "Traceback" not in res.stderr


def test_options_come_from_environment_variables(echo_target):
    res = run_cli("forward", "0:22", env={"NETTOOLS_IDLE_TIMEOUT": "whenever"})
    assert res.returncode == 2 and "invalid duration" in res.stderr
    with Forward(env={"NETTOOLS_RULES": f"0:{echo_target.port}"}) as fwd:
        addr = fwd.addr()
        assert echo_through(addr, b"from env") == b"from env"


def test_port_in_use_exits_1_with_one_line(echo_target):
    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        res = run_cli("forward", f"{port}:{echo_target.port}")
    assert res.returncode == 1, res
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "address already in use" in lines[0]
    assert "Traceback" not in res.stderr


# ------------------------------------------------------------ byte streams


def _sink_and_source(size: int, results: dict) -> Callable[[socket.socket], None]:
    """A target that sends ``size`` random bytes while it reads until EOF,
    hashing both ways, then half-closes."""

    def handler(conn: socket.socket) -> None:
        received = hashlib.sha256()
        count = [0]

        def read() -> None:
            while True:
                data = conn.recv(MiB)
                if not data:
                    return
                received.update(data)
                count[0] += len(data)

        reader = threading.Thread(target=read)
        reader.start()
        sent = hashlib.sha256()
        left = size
        while left:
            chunk = os.urandom(min(MiB, left))
            sent.update(chunk)
            conn.sendall(chunk)
            left -= len(chunk)
        conn.shutdown(socket.SHUT_WR)
        reader.join(90)
        results.update(target_received=received.hexdigest(), target_received_n=count[0],
                       target_sent=sent.hexdigest())

    return handler


@pytest.mark.timeout(180)
@pytest.mark.parametrize("mode", ["--splice", "--no-splice"])
def test_200_mib_both_directions_at_once_arrive_intact(mode):
    size = 200 * MiB
    results: dict = {}
    target = Target(_sink_and_source(size, results))
    try:
        with Forward(f"0:{target.port}", mode) as fwd:
            addr = fwd.addr()
            with socket.create_connection(addr, timeout=60) as s:
                sent = hashlib.sha256()

                def send() -> None:
                    left = size
                    while left:
                        chunk = os.urandom(min(MiB, left))
                        sent.update(chunk)
                        s.sendall(chunk)
                        left -= len(chunk)
                    s.shutdown(socket.SHUT_WR)

                sender = threading.Thread(target=send)
                sender.start()
                received = hashlib.sha256()
                n = 0
                while True:
                    data = s.recv(MiB)
                    if not data:
                        break
                    received.update(data)
                    n += len(data)
                sender.join(90)
            deadline = time.monotonic() + 30
            while "target_sent" not in results and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not target.errors
            assert n == size
            assert results["target_received_n"] == size
            assert received.hexdigest() == results["target_sent"]
            assert sent.hexdigest() == results["target_received"]
            fwd.wait_log(f"{size} bytes in, {size} out")
            code, err = fwd.stop()
        assert code == 0
        summary = stop_summary(err, "forward")
        assert summary["bytes_in"] == size and summary["bytes_out"] == size
    finally:
        target.close()


@pytest.mark.parametrize("mode", ["--splice", "--no-splice"])
def test_client_half_close_reaches_target_which_still_answers(mode):
    def reply_after_eof(conn: socket.socket) -> None:
        request = recv_all(conn)  # returns only once the client's EOF came through
        conn.sendall(b"got %d bytes: " % len(request) + hashlib.sha256(request).digest())

    target = Target(reply_after_eof)
    try:
        with Forward(f"0:{target.port}", mode) as fwd:
            request = os.urandom(300_000)
            with socket.create_connection(fwd.addr(), timeout=20) as s:
                s.sendall(request)
                s.shutdown(socket.SHUT_WR)
                answer = recv_all(s)
            assert answer == b"got 300000 bytes: " + hashlib.sha256(request).digest()
            fwd.stop()
    finally:
        target.close()


@pytest.mark.parametrize("mode", ["--splice", "--no-splice"])
def test_target_half_close_reaches_client_which_can_still_send(mode):
    got: dict = {}

    def greet_then_listen(conn: socket.socket) -> None:
        conn.sendall(b"hello, then EOF")
        conn.shutdown(socket.SHUT_WR)
        got["data"] = recv_all(conn)

    target = Target(greet_then_listen)
    try:
        with Forward(f"0:{target.port}", mode) as fwd:
            with socket.create_connection(fwd.addr(), timeout=20) as s:
                assert recv_all(s) == b"hello, then EOF"  # the target's EOF arrived...
                s.sendall(b"still talking after your EOF")  # ...and this way is still open
                s.shutdown(socket.SHUT_WR)
                assert recv_all(s) == b""
            deadline = time.monotonic() + 10
            while "data" not in got and time.monotonic() < deadline:
                time.sleep(0.02)
            assert got.get("data") == b"still talking after your EOF"
            fwd.stop()
    finally:
        target.close()


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_client_reset_resets_the_target_side():
    seen: dict = {}
    connected = threading.Event()

    def wait_for_end(conn: socket.socket) -> None:
        connected.set()
        try:
            seen["data"] = recv_all(conn)
        except ConnectionResetError:
            seen["data"] = "reset"

    target = Target(wait_for_end)
    try:
        with Forward(f"0:{target.port}") as fwd:
            s = socket.create_connection(fwd.addr(), timeout=20)
            s.sendall(b"abc")
            assert connected.wait(10)
            _reset(s)
            deadline = time.monotonic() + 10
            while "data" not in seen and time.monotonic() < deadline:
                time.sleep(0.02)
            assert seen.get("data") == "reset", "the client's reset did not reach the target"
            err = fwd.wait_log("reset by client")
            code, err = fwd.stop()
            assert stop_summary(err, "forward")["errors"] == 1
    finally:
        target.close()


def test_target_reset_resets_the_client_side():
    target = Target(lambda conn: (conn.recv(10), conn.sendall(b"x" * MiB), _reset(conn)))
    try:
        with Forward(f"0:{target.port}") as fwd:
            with socket.create_connection(fwd.addr(), timeout=10) as s:
                s.sendall(b"hi")
                with pytest.raises(ConnectionResetError):
                    recv_all(s)  # never a clean EOF after a cut transfer
            fwd.wait_log("reset by target")
            fwd.stop()
    finally:
        target.close()


@pytest.mark.timeout(120)
def test_500_concurrent_forwarded_connections(echo_target):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(4096, hard), hard))
    n = 500
    with Forward(f"0:{echo_target.port}") as fwd:
        addr = fwd.addr()
        socks = []
        try:
            for _ in range(n):
                socks.append(socket.create_connection(addr, timeout=30))
            payloads = [b"connection %d " % i + os.urandom(i) for i in range(n)]
            # Every connection says something before any gets an answer, so all
            # 500 are open end to end at once.
            for s, p in zip(socks, payloads, strict=True):
                s.sendall(p)
            for s, p in zip(socks, payloads, strict=True):
                assert recv_exactly(s, len(p)) == p
            assert echo_target.max_open == n
        finally:
            for s in socks:
                s.close()
        code, err = fwd.stop()
    assert code == 0
    assert stop_summary(err, "forward")["connections"] == n


# ---------------------------------------------------------------- failures


def test_target_refusing_connections_closes_client_logs_why_and_keeps_serving():
    # Bound but not listening: connections are refused and the port stays ours.
    waiting = socket.socket()
    waiting.bind((LOCAL, 0))
    port = waiting.getsockname()[1]
    try:
        with Forward(f"0:{port}") as fwd:
            addr = fwd.addr()
            for _ in range(2):
                with socket.create_connection(addr, timeout=10) as s:
                    assert recv_all(s) == b""  # closed on us, no hang
            err = fwd.wait_log("connection refused")
            refused = [line for line in err.splitlines() if "connection refused" in line]
            assert len(refused) == 2, err
            assert f"cannot connect to {LOCAL}:{port}" in refused[0]
            # The target comes up: the same forwarder now serves.
            waiting.listen(8)

            def answer() -> None:
                conn, _ = waiting.accept()
                with conn:
                    conn.sendall(b"up now")

            server = threading.Thread(target=answer)
            server.start()
            with socket.create_connection(addr, timeout=10) as s:
                assert recv_all(s) == b"up now"
            server.join(10)
            code, err = fwd.stop()
        assert code == 0
        summary = stop_summary(err, "forward")
        assert summary["connections"] == 3 and summary["errors"] == 2
    finally:
        waiting.close()


def test_connect_timeout_bounds_an_unanswered_connect():
    # A listener with a full backlog of 0 never completes new handshakes on Linux
    # once its queue is full: the forwarder's connect must give up by itself.
    blackhole = socket.socket()
    blackhole.bind((LOCAL, 0))
    blackhole.listen(0)
    fillers = []
    try:
        for _ in range(4):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(blackhole.getsockname())
            fillers.append(f)
        with Forward(f"0:{blackhole.getsockname()[1]}", "--connect-timeout", "300ms") as fwd:
            with socket.create_connection(fwd.addr(), timeout=10) as s:
                start = time.monotonic()
                assert recv_all(s) == b""
                assert time.monotonic() - start < 8
            fwd.wait_log("timed out")
            fwd.stop()
    finally:
        for f in fillers:
            f.close()
        blackhole.close()


def test_by_default_no_idle_timeout_and_keepalive_on_both_legs(echo_target):
    with Forward(f"0:{echo_target.port}") as fwd:
        port = fwd.addr()[1]
        with socket.create_connection((LOCAL, port), timeout=10) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            # ss shows a keepalive timer on the forwarder's two sockets: the
            # one it accepted (local port = the rule's) and the one to the target.
            out = subprocess.run(
                ["ss", "-tnoH", "state", "established"], capture_output=True, text=True,
                timeout=10,
            ).stdout
            legs = [line for line in out.splitlines()
                    if line.split()[2] == f"{LOCAL}:{port}"
                    or line.split()[3] == f"{LOCAL}:{echo_target.port}"]
            assert len(legs) == 2 and all("keepalive" in leg for leg in legs), out
        code, err = fwd.stop()
    assert "idle" not in err


def test_idle_timeout_closes_a_silent_connection(echo_target):
    with Forward(f"0:{echo_target.port}", "--idle-timeout", "300ms") as fwd:
        with socket.create_connection(fwd.addr(), timeout=10) as s:
            s.sendall(b"ping")
            assert recv_exactly(s, 4) == b"ping"
            start = time.monotonic()
            assert recv_all(s) == b""  # nothing more is sent: the forwarder closes it
            assert time.monotonic() - start < 8
        fwd.wait_log("idle for 0.3s")
        fwd.stop()


def test_max_conns_holds_extra_clients_until_a_slot_frees(echo_target):
    with Forward(f"0:{echo_target.port}", "--max-conns", "2") as fwd:
        addr = fwd.addr()
        first = socket.create_connection(addr, timeout=10)
        second = socket.create_connection(addr, timeout=10)
        for s in (first, second):
            s.sendall(b"x")
            assert recv_exactly(s, 1) == b"x"
        third = socket.create_connection(addr, timeout=10)  # sits in the backlog
        third.sendall(b"third")
        third.settimeout(0.5)
        with pytest.raises(TimeoutError):
            third.recv(10)
        assert echo_target.accepted == 2
        first.close()
        third.settimeout(10)
        assert recv_exactly(third, 5) == b"third"
        for s in (second, third):
            s.close()
        fwd.stop()


@pytest.mark.parametrize(
    ("flags", "admitted"),
    [
        (["--deny", "127.0.0.0/8"], False),
        (["--allow", "10.0.0.0/8"], False),
        (["--allow", "127.0.0.1/32"], True),
        (["--allow", "127.0.0.0/8", "--deny", "127.0.0.1"], False),
    ],
)
def test_allow_and_deny(echo_target, flags, admitted):
    with Forward(f"0:{echo_target.port}", *flags) as fwd:
        got = try_echo_through(fwd.addr(), b"may I?")
        code, err = fwd.stop()
    assert got == (b"may I?" if admitted else b"")
    assert echo_target.accepted == (1 if admitted else 0)
    summary = stop_summary(err, "forward")
    assert summary["denied"] == (0 if admitted else 1)


def test_json_log_lines(echo_target):
    with Forward(f"0:{echo_target.port}", "--json") as fwd:
        addr = fwd.addr()
        assert echo_through(addr, b"12345") == b"12345"
        err = fwd.wait_log('"event": "closed"')
        code, err = fwd.stop()
    records = [json.loads(line) for line in err.strip().splitlines()]
    closed = [r for r in records if r["event"] == "closed"]
    assert len(closed) == 1
    rec = closed[0]
    assert rec["peer"].startswith(f"{LOCAL}:")
    assert rec["rule"] == f"{addr[0]}:{addr[1]} -> {LOCAL}:{echo_target.port}"
    assert rec["bytes_in"] == 5 and rec["bytes_out"] == 5
    assert rec["seconds"] >= 0 and rec["end"] == "eof"
    assert records[-1]["event"] == "stopped"


def test_ipv6_and_unix_addresses_on_either_side(tmp_path):
    if not ipv6_available():
        pytest.skip("no IPv6 loopback")
    unix_target = Target(echo_handler, socket.AF_UNIX, str(tmp_path / "target.sock"))
    v6_target = Target(echo_handler, socket.AF_INET6, ("::1", 0))
    listen_path = tmp_path / "listen.sock"
    try:
        rules = [f"[::1]:0:unix:{tmp_path / 'target.sock'}",
                 f"unix:{listen_path}:[::1]:{v6_target.port}"]
        with Forward(*rules) as fwd:
            v6_event, unix_event = fwd.ready(2)
            assert v6_event["address"].startswith("[::1]:")
            assert v6_event["target"] == f"unix:{tmp_path / 'target.sock'}"
            assert unix_event["address"] == f"unix:{listen_path}"
            assert unix_event["target"] == f"[::1]:{v6_target.port}"
            host, port = parse_address(v6_event["address"])
            assert echo_through((host, port), b"six to unix", socket.AF_INET6) == b"six to unix"
            assert echo_through(str(listen_path), b"unix to six", socket.AF_UNIX) == b"unix to six"
            code, _ = fwd.stop()
        assert code == 0
        assert not listen_path.exists()  # the forwarder removes its socket file
        assert unix_target.accepted == 1 and v6_target.accepted == 1
    finally:
        unix_target.close()
        v6_target.close()


# --------------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    return Certs().write(tmp_path_factory.mktemp("certs"))._asdict()


def _digest_after_eof(conn: socket.socket) -> None:
    """Read until EOF, then answer with the length and SHA-256 of what came."""
    data = recv_all(conn)
    conn.sendall(b"%d " % len(data) + hashlib.sha256(data).digest())


@pytest.mark.parametrize("mode", ["--splice", "--no-splice"])
def test_tls_termination_with_a_test_certificate(certs, mode):
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    target = Target(_digest_after_eof)
    try:
        with Forward(f"0:{target.port}", "--tls-cert", str(certs["cert"]),
                     "--tls-key", str(certs["key"]), mode) as fwd:
            addr = fwd.addr()
            payload = os.urandom(3 * MiB)
            with socket.create_connection(addr, timeout=20) as raw:
                with client_ctx.wrap_socket(raw, server_hostname=LOCAL) as s:
                    s.sendall(payload)
                    # Half-close under TLS (a bare FIN): the plain target must see EOF
                    # and its answer must still come back encrypted.
                    socket.socket.shutdown(s, socket.SHUT_WR)
                    answer = recv_all(s)
            assert answer == b"%d " % len(payload) + hashlib.sha256(payload).digest()
            # A client that does not speak TLS is turned away with one line.
            with socket.create_connection(addr, timeout=10) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                try:
                    recv_all(s)  # perhaps an alert, then EOF
                except ConnectionResetError:
                    pass
            fwd.wait_log("TLS handshake with client failed")
            code, err = fwd.stop()
        assert code == 0
        assert target.accepted == 1  # the plain-text client never reached the target
        summary = stop_summary(err, "forward")
        assert summary["bytes_in"] == len(payload) and summary["errors"] == 1
    finally:
        target.close()


def test_tls_close_notify_is_answered_with_close_notify(certs):
    got: dict = {}

    def read_to_eof(conn: socket.socket) -> None:
        got["data"] = recv_all(conn)

    target = Target(read_to_eof)
    client_ctx = ssl.create_default_context(cafile=str(certs["ca"]))
    try:
        with Forward(f"0:{target.port}", "--tls-cert", str(certs["cert"]),
                     "--tls-key", str(certs["key"])) as fwd:
            with socket.create_connection(fwd.addr(), timeout=20) as raw:
                s = client_ctx.wrap_socket(raw, server_hostname=LOCAL)
                s.sendall(b"the whole request")
                # unwrap() sends close_notify and returns only once the forwarder
                # answers with its own: a bare FIN would raise here.
                s.unwrap()
            assert got.get("data") == b"the whole request"
            fwd.stop()
    finally:
        target.close()


def test_tls_to_the_target(certs):
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(str(certs["cert"]), str(certs["key"]))

    def tls_echo(conn: socket.socket) -> None:
        with server_ctx.wrap_socket(conn, server_side=True) as s:
            while True:
                data = s.recv(65536)
                if not data:
                    break
                s.sendall(data)

    target = Target(tls_echo)
    try:
        with Forward(f"0:{LOCAL}:{target.port}", "--tls-target",
                     "--tls-target-ca", str(certs["ca"])) as fwd:
            assert echo_through(fwd.addr(), b"plain in, TLS out") == b"plain in, TLS out"
            fwd.stop()
        # Without the CA the target's certificate is not trusted: closed, one line.
        with Forward(f"0:{LOCAL}:{target.port}", "--tls-target") as fwd:
            assert try_echo_through(fwd.addr(), b"x") == b""
            fwd.wait_log("certificate verify failed")
            fwd.stop()
    finally:
        target.close()


# --------------------------------------------------------------- stopping


def test_sigterm_drains_open_connections_then_prints_summary(echo_target):
    with Forward(f"0:{echo_target.port}", "--drain-timeout", "20s") as fwd:
        addr = fwd.addr()
        s = socket.create_connection(addr, timeout=10)
        s.sendall(b"before")
        assert recv_exactly(s, 6) == b"before"
        fwd.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        probes = 0  # connections that slipped in before the listener closed
        while time.monotonic() < deadline:  # the listener closes soon after the signal
            try:
                socket.create_connection(addr, timeout=5).close()
                probes += 1
            except (ConnectionRefusedError, ConnectionResetError):
                break  # refused once closed; reset if queued as the listener closed
            time.sleep(0.02)
        else:
            raise AssertionError("still accepting after SIGTERM")
        assert fwd.proc.poll() is None  # still draining: the connection is open
        s.sendall(b"during drain")
        assert recv_exactly(s, 12) == b"during drain"
        s.shutdown(socket.SHUT_WR)
        assert recv_all(s) == b""
        s.close()
        start = time.monotonic()
        code, err = fwd.wait(timeout=10)  # a second signal is not needed
        assert time.monotonic() - start < 8  # ended when the last connection did
    assert code == 0
    assert "Traceback" not in err
    summary = stop_summary(err, "forward")
    assert 1 <= summary["connections"] <= 1 + probes
    assert summary["bytes_in"] == 18 and summary["bytes_out"] == 18
    assert summary["errors"] == 0 and summary["active"] == 0


def test_drain_timeout_bounds_the_wait_for_busy_connections(echo_target):
    with Forward(f"0:{echo_target.port}", "--drain-timeout", "300ms") as fwd:
        s = socket.create_connection(fwd.addr(), timeout=10)
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        start = time.monotonic()
        code, err = fwd.stop(signal.SIGINT)
        assert time.monotonic() - start < 8
        assert recv_all(s) == b""  # the forwarder closed it at the deadline
        s.close()
    assert code == 0
    summary = stop_summary(err, "forward")
    assert summary["connections"] == 1 and summary["active"] == 0


# ------------------------------------------------------------------ recipe


def test_ci_recipe_runs(tmp_path):
    bindir = Path(sys.executable).parent
    nettools = shutil.which("nettools", path=str(bindir))
    assert nettools, "the nettools console script is not installed next to this python"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}",
           "TMPDIR": str(tmp_path)}
    res = subprocess.run(["bash", str(ROOT / "recipes" / "ci-forward.sh")],
                         capture_output=True, text=True, timeout=50, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "ci-forward: ok" in res.stdout


# ------------------------------------- the peer features, as the command sets them


def test_balance_and_proxy_protocol_options_reach_the_rules():
    """--balance first skips a refusing target; --accept-proxy-protocol reads the
    front's (v2) header and --proxy-protocol v1 hands its client on to the target."""
    v2_header = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", 12)
                 + socket.inet_aton("192.0.2.7") + socket.inet_aton("127.0.0.1")
                 + struct.pack("!HH", 4321, 80))  # fmt: skip

    def header_back(conn: socket.socket) -> None:
        line = b""
        while not line.endswith(b"\r\n"):
            chunk = conn.recv(1)
            if not chunk:
                return
            line += chunk
        conn.sendall(line)

    target = Target(header_back)
    with socket.socket() as dead:
        dead.bind((LOCAL, 0))
        dead_port = dead.getsockname()[1]  # closed below: connections to it are refused
    try:
        with Forward(f"0:{LOCAL}:{dead_port},{LOCAL}:{target.port}", "--balance", "first",
                     "--accept-proxy-protocol", "--proxy-protocol", "v1") as fwd:  # fmt: skip
            addr = fwd.addr()
            for _ in range(3):
                with socket.create_connection(addr, timeout=10) as s:
                    s.sendall(v2_header)
                    assert recv_all(s) == b"PROXY TCP4 192.0.2.7 127.0.0.1 4321 80\r\n"
            code, err = fwd.stop()
        assert code == 0, err
        assert target.accepted == 3
    finally:
        target.close()


def test_udp_rule_and_its_session_limit_from_the_command_line():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind((LOCAL, 0))
        server.settimeout(10)

        def answer() -> None:
            for _ in range(2):
                data, peer = server.recvfrom(65536)
                server.sendto(data.upper(), peer)

        answering = threading.Thread(target=answer, daemon=True)
        answering.start()
        with Forward(f"udp:0:{LOCAL}:{server.getsockname()[1]}", "--udp-ttl", "30s",
                     "--udp-max-sessions", "1") as fwd:  # fmt: skip
            addr = fwd.addr()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a, \
                    socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b:  # fmt: skip
                a.settimeout(10)
                big = os.urandom(60_000)
                a.sendto(b"one", addr)
                assert a.recvfrom(65536)[0] == b"ONE"
                b.sendto(b"two", addr)  # a second client: over the limit, dropped
                a.sendto(big, addr)  # the first one's session still answers, whole
                assert a.recvfrom(65536)[0] == big.upper()
            answering.join(10)
            code, err = fwd.stop()
    assert code == 0, err
    summary = stop_summary(err, "forward")
    assert summary["connections"] == 1 and summary["datagrams_dropped"] == 1
