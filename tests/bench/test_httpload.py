"""bench/loadgen/httpload.py: its head parsing, and whole runs against the standard library's
HTTP server (keep-alive and close-after-each-answer) on loopback."""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest

from bench.loadgen import httpload
from bench.loadgen.httpload import Head, HeadError, parse_head

REPO_ROOT = Path(__file__).resolve().parents[2]
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 5\r\n\r\n"


def test_head_with_part_of_its_body() -> None:
    assert parse_head(HEAD + b"ab") == Head(len(HEAD), 200, 5, True)


def test_incomplete_head_waits_for_more() -> None:
    assert parse_head(HEAD[:-2]) is None


def test_http10_answer_is_not_kept_alive() -> None:
    head = b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n"
    assert parse_head(head) == Head(len(head), 200, 0, False)


def test_status_and_close_are_read() -> None:
    head = b"HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 12\r\n\r\n"
    assert parse_head(head) == Head(len(head), 404, 12, False)


@pytest.mark.parametrize("head, why", [
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "without Content-Length"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", "Duplicate"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: five\r\n\r\n", "Content-Length"),
    (b"NOT HTTP AT ALL\r\n\r\n", "malformed"),
])  # fmt: skip
def test_heads_it_cannot_follow(head: bytes, why: str) -> None:
    with pytest.raises(HeadError, match=why):
        parse_head(head)


def test_endless_head_is_refused() -> None:
    with pytest.raises(HeadError, match="longer than"):
        parse_head(b"HTTP/1.1 200 OK\r\nX: " + b"a" * httpload.MAX_HEAD)


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, *args: object) -> None:
        pass  # the run's end drops answers in flight: the handler's broken pipe is expected


@contextlib.contextmanager
def _server(root: Path, protocol: str) -> Iterator[int]:
    handler = type("Handler", (_Quiet,), {"protocol_version": protocol})
    server = _QuietServer(("127.0.0.1", 0), partial(handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    # Larger than LOWAT_FROM and than one head read: the body goes through MSG_TRUNC and
    # SO_RCVLOWAT, and a wrong count of its bytes would break the next answer's head.
    (tmp_path / "big.bin").write_bytes(bytes(range(256)) * 1024)
    (tmp_path / "small.bin").write_bytes(b"x" * 100)
    return tmp_path


@pytest.mark.parametrize("protocol", ["HTTP/1.1", "HTTP/1.0"])
@pytest.mark.parametrize("name", ["big.bin", "small.bin"])
def test_run_counts_every_answer(site: Path, protocol: str, name: str) -> None:
    with _server(site, protocol) as port:
        result = httpload.run("127.0.0.1", port, f"/{name}", 1, 30.0, max_requests=5)
    assert (result["requests"], result["errors"], result["lowat_stalls"]) == (5, 0, 0)
    assert result["p50_us"] > 0 and result["cpu_s"] >= 0


def test_missing_file_counts_as_error(site: Path) -> None:
    with _server(site, "HTTP/1.1") as port:
        result = httpload.run("127.0.0.1", port, "/missing", 2, 30.0)
    assert (result["requests"], result["errors"]) == (0, 2)


def test_refused_connections_are_errors() -> None:
    with _server(Path("."), "HTTP/1.1") as port:
        pass  # closed: nothing listens on the port any more
    result = httpload.run("127.0.0.1", port, "/", 3, 30.0)
    assert (result["requests"], result["errors"]) == (0, 3)


def test_body_stuck_short_of_its_lowat_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that sends half a large body and holds the connection: the safety net lowers
    the connection's SO_RCVLOWAT and says so."""
    monkeypatch.setattr(httpload, "STALL_S", 0.05)
    listener = socket.create_server(("127.0.0.1", 0))
    done = threading.Event()

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 409600\r\n\r\n" + b"x" * 204800)
            done.wait(30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = httpload.run("127.0.0.1", listener.getsockname()[1], "/", 1, 1.0)
    finally:
        done.set()
        thread.join(10)
        listener.close()
    assert (result["requests"], result["errors"]) == (0, 0)
    assert result["lowat_stalls"] >= 1


def test_command_prints_one_json_line(site: Path) -> None:
    with _server(site, "HTTP/1.1") as port:
        out = subprocess.run(
            [sys.executable, "-m", "bench.loadgen.httpload", "-c", "2", "-n", "4", "-d", "30",
             f"http://127.0.0.1:{port}/big.bin"],
            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True).stdout
    result = json.loads(out)
    assert result["requests"] >= 4 and result["errors"] == 0


def test_command_rejects_a_bad_url() -> None:
    proc = subprocess.run([sys.executable, "-m", "bench.loadgen.httpload", "ftp://x/"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "http:// URL" in proc.stderr
