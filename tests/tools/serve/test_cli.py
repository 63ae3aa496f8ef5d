"""``nettools serve MODULE:APP`` through the real entry point, on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from helpers.cli import Cli, run_cli, stop_summary
from helpers.paths import RECIPES, ROOT
from helpers.tls import Certs

import nettools
from nettools.tools.plumbing.service import raise_fd_limit

pytest.importorskip("flask")

pytestmark = pytest.mark.timeout(90)

LOCAL = "127.0.0.1"

APP = '''
import os
import time

from flask import Flask

import nettools

app = Flask(__name__)


@app.route("/sleep")
def sleep():
    time.sleep(0.1)
    return "slept"


@app.route("/slow")
def slow():
    time.sleep(1.0)
    return "done"


@app.route("/pid")
def pid():
    return str(os.getpid())


@app.route("/patched")
def patched():
    return str(nettools.is_monkey_patched("time"))


def create_app():
    return app


not_an_app = 42
'''


@pytest.fixture
def appdir(tmp_path: Path) -> Path:
    (tmp_path / "testapp.py").write_text(APP)
    return tmp_path


def _env(cwd: Path) -> dict:
    return {"PYTHONPATH": os.pathsep.join([str(cwd), str(ROOT)])}


def serve_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    """``nettools serve *args`` in ``cwd``, to its end."""
    return run_cli("serve", *args, env=_env(cwd), cwd=cwd, timeout=60)


class Serve(Cli):
    """``nettools serve`` in a process group of its own: the exit kills its workers too."""

    def __init__(self, cwd: Path, *args: str) -> None:
        super().__init__("serve", "--port", "0", *args, env=_env(cwd), cwd=cwd, group=True)

    def ready(self, timeout: float = 30) -> dict:
        event = super().ready(timeout)
        assert event["service"] == "serve"
        return event


def get(addr: tuple[str, int], path: str) -> tuple[int, str]:
    """One HTTP/1.1 request over a green socket: ``(status, body)``."""
    with nettools.Timeout(30):
        sock = nettools.connect(addr)
        try:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        finally:
            sock.close()
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, body.decode()


def get_many(addr: tuple[str, int], path: str, n: int) -> list[tuple[int, str]]:
    raise_fd_limit(n + 256)
    pool = nettools.GreenPool(n)
    return list(pool.imap(lambda _: get(addr, path), range(n)))


def test_thousand_concurrent_sleeping_requests(appdir: Path) -> None:
    """1,000 requests that each sleep 100 ms finish in a small multiple of 100 ms:
    the sleeps overlap (patched time.sleep is green), they do not queue."""
    with Serve(appdir, "testapp:app", "--workers", "2") as srv:
        addr = srv.tcp_address()
        assert get(addr, "/sleep") == (200, "slept")  # warm up both imports
        start = time.monotonic()
        results = get_many(addr, "/sleep", 1000)
        elapsed = time.monotonic() - start
        assert results == [(200, "slept")] * 1000
        # Serially this would take 100 s (50 s per worker).
        assert elapsed < 10, elapsed
        code, _, err = srv.stop()
        assert code == 0, err
        assert stop_summary(err, "serve")["workers"] == 2


def test_sigterm_during_load_loses_no_request(appdir: Path) -> None:
    with Serve(appdir, "testapp:app", "--workers", "2", "--drain-timeout", "20s") as srv:
        addr = srv.tcp_address()
        pool = nettools.GreenPool(200)
        raise_fd_limit(512)
        gts = [pool.spawn(get, addr, "/slow") for _ in range(200)]
        # Let every request be accepted (each takes 1 s) before the signal: a
        # connection still in the kernel's backlog when the listener closes is
        # refused by design, it was never the server's.
        nettools.sleep(0.5)
        srv.proc.send_signal(signal.SIGTERM)
        results = [gt.wait() for gt in gts]
        assert results == [(200, "done")] * 200
        srv.proc.wait(timeout=30)
        err = srv.proc.stderr.read()
        assert srv.proc.returncode == 0, err
        assert stop_summary(err, "serve")["connections"] >= 200


def test_killed_worker_is_restarted(appdir: Path) -> None:
    with Serve(appdir, "testapp:app", "--workers", "2") as srv:
        addr = srv.tcp_address()
        pids: set[str] = set()
        for _ in range(200):  # bounded: SO_REUSEPORT spreads connections by hash
            pids.add(get(addr, "/pid")[1])
            if len(pids) == 2:
                break
        assert len(pids) == 2
        victim = int(sorted(pids)[0])
        os.kill(victim, signal.SIGKILL)
        seen: set[str] = set()
        for _ in range(400):
            try:
                status, body = get(addr, "/pid")
            except OSError:
                # A connection the kernel had already queued on the dead worker's
                # listener is reset: SO_REUSEPORT has no hand-over.  Try again.
                continue
            assert status == 200
            seen.add(body)
            if len(seen - pids) >= 1:
                break
            time.sleep(0.02)
        assert str(victim) not in seen
        assert seen - pids, "no new worker answered"
        code, _, err = srv.stop()
        assert code == 0, err
        assert stop_summary(err, "serve")["restarts"] == 1


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch:app", "cannot import 'nosuch': No module named 'nosuch'"),
        ("testapp", "expected MODULE:APP"),
        ("testapp:missing", "has no attribute 'missing'"),
        ("testapp:not_an_app", "not callable"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_app_spec_is_usage_error(appdir: Path, spec: str, message: str, workers: str) -> None:
    res = serve_cli(appdir, spec, "--port", "0", "--workers", workers)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nettools serve: ") and message in lines[0]
    assert res.stdout == ""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_port_in_use_is_runtime_error(appdir: Path, workers: str) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind((LOCAL, 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = serve_cli(appdir, "testapp:app", "--port", str(port), "--workers", workers)
    assert res.returncode == 1, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert "address already in use" in lines[0] and lines[0].startswith("nettools serve: ")


def test_patch_is_default_and_no_patch_leaves_time_blocking(appdir: Path) -> None:
    with Serve(appdir, "testapp:create_app()") as srv:
        assert get(srv.tcp_address(), "/patched") == (200, "True")
        assert srv.stop()[0] == 0
    with Serve(appdir, "testapp:app", "--no-patch") as srv:
        assert get(srv.tcp_address(), "/patched") == (200, "False")
        assert srv.stop()[0] == 0


def test_recipe_flask_app_served(tmp_path: Path) -> None:
    from websockets.sync.client import connect as ws_connect

    with Serve(RECIPES, "flask_app:app", "--workers", "2", "--access-log", "-") as srv:
        addr = srv.tcp_address()
        assert get(addr, "/") == (200, "Hello from Flask on nettools!\n")
        status, body = get(addr, "/info")
        assert status == 200 and json.loads(body)["patched"] is True
        results = get_many(addr, "/slow?ms=200", 50)
        assert all(s == 200 and json.loads(b) == {"slept_ms": 200} for s, b in results)
        # The websocket route beside the Flask views.
        with ws_connect(f"ws://{addr[0]}:{addr[1]}/ws", open_timeout=30) as ws:
            ws.send("hello")
            assert ws.recv(timeout=30) == "hello"
            ws.send(b"\x00\x01")
            assert ws.recv(timeout=30) == b"\x00\x01"
        code, _, err = srv.stop()
        assert code == 0, err
        assert "GET /info" in err  # the access log


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tls-key", "key.pem"], "--tls-key needs --tls-cert"),
        (["--tls-cert", "/nonexistent/cert.pem"], "cannot load --tls-cert"),
    ],
)
@pytest.mark.parametrize("workers", ["1", "2"])
def test_bad_tls_options_are_usage_errors(
    appdir: Path, args: list[str], message: str, workers: str
) -> None:
    res = serve_cli(appdir, "testapp:app", "--port", "0", "--workers", workers, *args)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1, res.stderr
    assert lines[0].startswith("nettools serve: ") and message in lines[0]
    assert res.stdout == ""


@pytest.mark.parametrize("workers", ["1", "2"])
def test_tls_cert_serves_https(appdir: Path, tmp_path: Path, workers: str) -> None:
    import socket

    certs = Certs(LOCAL)
    _, cert, key = certs.write(tmp_path)
    client_ctx = certs.client_context()
    with Serve(appdir, "testapp:app", "--workers", workers,
               "--tls-cert", str(cert), "--tls-key", str(key)) as srv:
        addr = srv.tcp_address()
        with socket.create_connection(addr, timeout=30) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=LOCAL) as s:
                s.sendall(b"GET /patched HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                answer = b""
                while chunk := s.recv(65536):
                    answer += chunk
        assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"\r\n\r\nTrue")
        code, _, err = srv.stop()
        assert code == 0, err
