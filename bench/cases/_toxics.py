"""How exact the forwarder's toxics are, through its Toxiproxy API (the ``forward_toxics`` case).

``nettools forward`` runs pinned to its own core with ``--api``; a stdlib echo server in a
thread is the target; the client here measures, in one run:

* ``latency_err_ms``: the mean extra round-trip time under a 50 ms downstream latency toxic,
  minus 50 and minus the round trip without it (so 0 is exact); ``latency_max_err_ms`` the worst;
* ``bandwidth_err_pct``: the rate measured through a 1000 KB/s upstream bandwidth toxic
  (2 MB sent), against the rate asked for, in percent (negative: slower);
* ``limit_data_exact``: 1 when a 123,457-byte limit_data toxic let exactly that many bytes
  through, then closed;
* ``sha256_equal``: 1 when 32 MiB echoed through a proxy whose toxics were added, changed and
  removed all along came back sha256-identical.

The "ops" are the round trips per second under the latency toxic.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

from bench.cases._procs import started

FORWARDER_CORE = 1
LATENCY_MS = 50
RATE_KB = 1000
LIMIT = 123_457


def _echo_server() -> tuple[socket.socket, int]:
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)
            conn.shutdown(socket.SHUT_WR)

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener, listener.getsockname()[1]


def _api(api: tuple[str, int], method: str, path: str, body: Any = None) -> Any:
    conn = http.client.HTTPConnection(*api, timeout=10)
    try:
        conn.request(method, path, None if body is None else json.dumps(body))
        res = conn.getresponse()
        data = res.read()
        if res.status >= 300:
            raise RuntimeError(f"{method} {path}: {res.status} {data!r}")
        return json.loads(data) if data else None
    finally:
        conn.close()


def _round_trips(addr: tuple[str, int], n: int) -> list[float]:
    with socket.create_connection(addr) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        times = []
        for _ in range(n):
            start = time.perf_counter()
            s.sendall(b"x" * 64)
            got = 0
            while got < 64:
                got += len(s.recv(64 - got))
            times.append(time.perf_counter() - start)
        return times


def _echo_all(addr: tuple[str, int], payload: bytes) -> bytes:
    with socket.create_connection(addr) as s:
        sender = threading.Thread(target=lambda: (s.sendall(payload), s.shutdown(socket.SHUT_WR)))
        sender.start()
        chunks = []
        while chunk := s.recv(1 << 20):
            chunks.append(chunk)
        sender.join()
        return b"".join(chunks)


def measure(n: int) -> dict[str, Any]:
    """One run: ``n`` round trips under latency, plus the other figures."""
    listener, target = _echo_server()
    cmd = [sys.executable, "-m", "nettools", "-q", "forward", f"p=0:{target}",
           "--api", "127.0.0.1:0"]
    try:
        with started(cmd, FORWARDER_CORE, stdout=subprocess.PIPE) as proc:
            events = [json.loads(proc.stdout.readline()) for _ in range(2)]
            addr = _address(events, "name")
            api = _address(events, "api")
            base = statistics.mean(_round_trips(addr, 50))
            _api(api, "POST", "/proxies/p/toxics",
                 {"type": "latency", "attributes": {"latency": LATENCY_MS}})
            start = time.perf_counter()
            times = _round_trips(addr, n)
            elapsed = time.perf_counter() - start
            errors = [(t - base) * 1000 - LATENCY_MS for t in times]
            _api(api, "POST", "/reset")

            _api(api, "POST", "/proxies/p/toxics",
                 {"type": "bandwidth", "stream": "upstream", "attributes": {"rate": RATE_KB}})
            payload = os.urandom(2_000_000)
            start = time.perf_counter()
            echoed = _echo_all(addr, payload)
            rate = len(echoed) / (time.perf_counter() - start) / 1000
            _api(api, "POST", "/reset")

            _api(api, "POST", "/proxies/p/toxics",
                 {"type": "limit_data", "attributes": {"bytes": LIMIT}})
            limited = _echo_all(addr, os.urandom(1 << 20))
            _api(api, "POST", "/reset")

            churn_stop = threading.Event()

            def churn() -> None:
                kinds = [("latency", {"latency": 3, "jitter": 2}),
                         ("slicer", {"average_size": 8192, "size_variation": 4000}),
                         ("bandwidth", {"rate": 200_000})]
                while not churn_stop.is_set():
                    for stream in ("upstream", "downstream"):
                        for kind, attrs in kinds:
                            _api(api, "POST", "/proxies/p/toxics",
                                 {"type": kind, "stream": stream, "attributes": attrs})
                    time.sleep(0.02)
                    _api(api, "POST", "/reset")

            churner = threading.Thread(target=churn)
            churner.start()
            big = os.urandom(32 << 20)
            try:
                back = _echo_all(addr, big)
            finally:
                churn_stop.set()
                churner.join()
            proc.terminate()
    finally:
        listener.close()
    return {
        "ops_per_s": n / elapsed,
        "latency_err_ms": round(statistics.mean(errors), 2),
        "latency_max_err_ms": round(max(errors, key=abs), 2),
        "bandwidth_err_pct": round((rate - RATE_KB) / RATE_KB * 100, 2),
        "limit_data_exact": int(len(limited) == LIMIT),
        "sha256_equal": int(hashlib.sha256(back).digest() == hashlib.sha256(big).digest()),
    }


def _address(events: list[dict], key: str) -> tuple[str, int]:
    (event,) = [e for e in events if key in e]
    host, port = event["address"].rsplit(":", 1)
    return host, int(port)
