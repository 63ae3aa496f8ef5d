"""A bounded soak: echo, chat, wschat, forward and serve under churn; their memory and fds.

One case, ``soak.churn_10min``: the five servers run as ``nettools`` commands (pinned to one
core, stderr to a log each) while client threads (on the other core) churn through them for
``n`` seconds (600 by default): connect, talk, disconnect -- every third connection ends with
an abrupt reset (``SO_LINGER`` 0) instead, every fifth leaves before reading the answer.

* echo: a line and its echo; forward: the same through ``nettools forward`` to the echo server;
* chat: a nickname, a line, ``/quit`` (or the reset);
* wschat: the websocket handshake on ``/chat``, a join and a message;
* serve: three keep-alive requests to a small WSGI application (``app`` below).

Every minute (every ``n / 10`` seconds for a shorter run) each server's RSS and open fds are
sampled.  Reported: the churn cycles per second (the "ops"), and per server the growth of RSS
(KiB) and of open fds from the end of the first minute (the warm-up) to the end of the run --
the target is none -- plus the count of tracebacks in its log (an ordinary client mistake must
never produce one) and of client cycles that failed.  The raw samples are in the JSON file.
"""

from __future__ import annotations

import base64
import contextlib
import http.client
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cases import Case, Result
from bench.cases._procs import open_fds, pin, ready_port, rss_kib, started

SERVER_CORE = 1
CLIENT_CORE = 0
HOST = "127.0.0.1"
STARTUP_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 10.0
SAMPLE_EVERY_S = 60.0
THREADS_PER_SERVICE = 3
REPO_ROOT = Path(__file__).resolve().parents[2]


def app(environ: dict[str, Any], start_response: Callable) -> list[bytes]:
    """The WSGI application ``nettools serve`` runs: it reads the body, answers 1 KiB."""
    environ["wsgi.input"].read()
    body = b"x" * 1024
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1024")])
    return [body]


# --- one churn cycle per service ----------------------------------------------------------


def _connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=IO_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _end(sock: socket.socket, cycle: int) -> None:
    """Close ``sock``: every third cycle with a reset instead of a FIN."""
    if cycle % 3 == 0:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def _read_until(sock: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before {marker!r}")
        data += chunk
    return data


def _echo_cycle(port: int, cycle: int) -> None:
    sock = _connect(port)
    try:
        sock.sendall(b"soak %d\n" % cycle)
        if cycle % 5:
            _read_until(sock, b"\n")
    finally:
        _end(sock, cycle)


def _chat_cycle(port: int, cycle: int) -> None:
    sock = _connect(port)
    try:
        _read_until(sock, b"nickname")
        sock.sendall(b"soak%d_%d\n" % (threading.get_ident() % 10_000, cycle))
        if cycle % 5:
            _read_until(sock, b"lobby")
            sock.sendall(b"hello from the soak\n/quit\n")
    finally:
        _end(sock, cycle)


def _ws_frame(text: bytes) -> bytes:
    """One masked text frame (a client's), payload under 126 bytes."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(text))
    return bytes([0x81, 0x80 | len(text)]) + mask + masked


def _wschat_cycle(port: int, cycle: int) -> None:
    sock = _connect(port)
    try:
        key = base64.b64encode(os.urandom(16))
        sock.sendall(b"GET /chat HTTP/1.1\r\nHost: soak\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\nSec-WebSocket-Key: " + key
                     + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")  # fmt: skip
        if not _read_until(sock, b"\r\n\r\n").startswith(b"HTTP/1.1 101"):
            raise ConnectionError("websocket handshake refused")
        nick = f"ws{threading.get_ident() % 10_000}_{cycle}"
        sock.sendall(_ws_frame(json.dumps({"type": "join", "nick": nick, "room": "soak"}).encode()))
        if cycle % 5:
            _read_until(sock, b"welcome")
            sock.sendall(_ws_frame(b'{"type": "say", "text": "hello from the soak"}'))
            sock.sendall(b"\x88\x82" + b"\0\0\0\0" + b"\x03\xe8")  # close 1000, zero mask
    finally:
        _end(sock, cycle)


def _serve_cycle(port: int, cycle: int) -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=IO_TIMEOUT_S)
    try:
        for i in range(3):
            conn.request("POST" if i else "GET", "/", body=b"y" * 100 if i else None)
            if cycle % 5 == 0 and i == 2:
                break  # gone without reading the last answer
            resp = conn.getresponse()
            if resp.status != 200 or len(resp.read()) != 1024:
                raise ConnectionError(f"HTTP {resp.status}")
    finally:
        if conn.sock is not None:
            _end(conn.sock, cycle)
        conn.close()


CYCLES: dict[str, Callable[[int, int], None]] = {
    "echo": _echo_cycle,
    "chat": _chat_cycle,
    "wschat": _wschat_cycle,
    "forward": _echo_cycle,
    "serve": _serve_cycle,
}


# --- the servers --------------------------------------------------------------------------


@contextlib.contextmanager
def _servers(logs: Path) -> Iterator[dict[str, tuple[subprocess.Popen[str], int]]]:
    """The five servers, started in turn (forward needs the echo server's port)."""
    nettools = [sys.executable, "-m", "nettools"]
    with contextlib.ExitStack() as stack:
        procs: dict[str, tuple[subprocess.Popen[str], int]] = {}

        def start(name: str, args: list[str]) -> None:
            log = stack.enter_context(open(logs / f"{name}.log", "w"))
            proc = stack.enter_context(started(
                [*nettools, *args], SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                stderr=log, stdin=subprocess.DEVNULL,
            ))  # fmt: skip
            procs[name] = (proc, ready_port(proc, STARTUP_TIMEOUT_S, f"nettools {name}"))

        start("echo", ["echo"])
        start("chat", ["chat", "--max-conns", "10000"])
        start("wschat", ["wschat", "--port", "0"])
        start("forward", ["forward", f"0:{procs['echo'][1]}"])
        start("serve", ["serve", "bench.cases.soak:app", "--port", "0"])
        yield procs


# --- the run ------------------------------------------------------------------------------


class _Churn:
    """Client threads cycling through one service until ``stop`` is set."""

    def __init__(self, name: str, port: int, stop: threading.Event) -> None:
        self.name, self.port, self.stop = name, port, stop
        self.cycles = 0
        self.failures = 0
        self.last_failure = ""
        self._lock = threading.Lock()
        self.threads = [
            threading.Thread(target=self._run, args=(k,), daemon=True)
            for k in range(THREADS_PER_SERVICE)
        ]

    def _run(self, k: int) -> None:
        cycle = CYCLES[self.name]
        i = k
        while not self.stop.is_set():
            i += THREADS_PER_SERVICE
            try:
                cycle(self.port, i)
                ok = True
            except OSError as exc:
                ok, failure = False, f"{type(exc).__name__}: {exc}"
            with self._lock:
                self.cycles += 1
                if not ok:
                    self.failures += 1
                    self.last_failure = failure


def _soak(seconds: int) -> dict[str, Any]:
    pin_self = pin(CLIENT_CORE)
    if pin_self is not None:
        pin_self()
    interval = min(SAMPLE_EVERY_S, seconds / 10)
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp, _servers(Path(tmp)) as procs:
        samples: dict[str, list[tuple[float, int, int]]] = {name: [] for name in procs}
        stop = threading.Event()
        churns = [_Churn(name, port, stop) for name, (_, port) in procs.items()]
        start = time.monotonic()
        for churn in churns:
            for t in churn.threads:
                t.start()
        try:
            for tick in range(1, round(seconds / interval) + 1):
                time.sleep(max(0.0, start + tick * interval - time.monotonic()))
                for name, (proc, _) in procs.items():
                    if proc.poll() is not None:
                        raise RuntimeError(f"nettools {name} exited {proc.returncode}")
                    samples[name].append(
                        (round(time.monotonic() - start), rss_kib(proc.pid), open_fds(proc.pid))
                    )
        finally:
            stop.set()
            for churn in churns:
                for t in churn.threads:
                    t.join(IO_TIMEOUT_S + 5)
        elapsed = time.monotonic() - start
        tracebacks = {
            name: (Path(tmp) / f"{name}.log").read_text(errors="replace").count("Traceback")
            for name in procs
        }
    metrics: dict[str, Any] = {
        "ops_per_s": sum(c.cycles for c in churns) / elapsed,
        "seconds": elapsed,
        "samples": {name: [list(s) for s in rows] for name, rows in samples.items()},
    }
    for churn in churns:
        rows = samples[churn.name]
        metrics[f"{churn.name}_rss_growth_kib"] = rows[-1][1] - rows[0][1]
        metrics[f"{churn.name}_fds_growth"] = rows[-1][2] - rows[0][2]
        metrics[f"{churn.name}_rss_mib"] = rows[-1][1] / 1024
        metrics[f"{churn.name}_cycles"] = churn.cycles
        metrics[f"{churn.name}_failed"] = churn.failures
        metrics[f"{churn.name}_tracebacks"] = tracebacks[churn.name]
        if churn.last_failure:
            metrics[f"{churn.name}_last_failure"] = churn.last_failure
    return metrics


def _run(n: int) -> Result:
    return None if n == 0 else _soak(n)


CASES: dict[str, Case] = {
    "churn_10min": Case(n=600, unit="churn cycles", warmup=0, peers={"nettools": _run},
                        runs=1, timeout=600 + 300),  # fmt: skip
}
