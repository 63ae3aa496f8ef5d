"""Static files: requests/s for a 1 KiB file under wrk and a 1 MiB file under httpload, c100.

Each run starts one peer's server on a directory holding both files, pinned to core 1, and
runs the load generator pinned to core 0 (``wsgi.measure_load``: a warm-up second, then ``n``
milliseconds), 100 keep-alive connections. Peers:

* ``nettools``: ``nettools static DIR`` (its cache answers the small file in one send; the
  large one goes out with sendfile);
* ``http.server``: ``python -m http.server`` (threads, one connection per request), what a CI
  job reaches for;
* ``nginx``: Debian's nginx, one worker, ``sendfile on``, ``tcp_nopush on``, no access log;
  installed with apt-get when missing (as root), else the run fails saying how to install it.

Metrics as in the WSGI case: requests/s, p50/p99 latency (us), errors,
``server_us_per_req``, the server's CPU per request (master and worker for nginx), and the
load generator's side (``client_us_per_req``, ``client_cpu_pct``, ``client_core_idle_pct``).

Why two generators: wrk -t1 reads each response 8 KiB at a time and pays the kernel's copy of
every byte into its buffer, 265-390 us of its CPU per 1 MiB answer, more than a sendfile
server spends making it (150-250 us), so under wrk the 1 MiB figures were wrk's pace, not the
server's. ``bench/loadgen/httpload.py`` reads only each head and drops the body in the kernel
(``recv(MSG_TRUNC)``, one wake-up per body with ``SO_RCVLOWAT``): 60-80 us per 1 MiB answer
(150-175 against ``http.server``, which closes the connection after each; ab needs 450, h2load
340).
On loopback the kernel's receive work for the body then runs mostly in the sender's context,
so every server's ``server_us_per_req`` includes it (it was charged to wrk before). For 1 KiB
answers wrk costs 14-17 us per answer and stays the generator (httpload measures the same
requests/s there, at 15-22 us).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result
from bench.cases._procs import ensure_program, pin, read_line, ready_port, started
from bench.cases.wsgi import CLIENT_CORE, REPO_ROOT, measure_load, wrk_client

HOST = "127.0.0.1"
SERVER_CORE = 1
CONNECTIONS = 100
STARTUP_TIMEOUT_S = 30.0
FILES = {"1k.bin": 1024, "1m.bin": 1024 * 1024}
PEERS = ("nettools", "http.server", "nginx")

NGINX_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {work}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {work}/body;
    proxy_temp_path {work}/proxy;
    fastcgi_temp_path {work}/fastcgi;
    uwsgi_temp_path {work}/uwsgi;
    scgi_temp_path {work}/scgi;
    server {{
        listen {host}:{port} backlog=1024;
        root {root};
    }}
}}
"""


@contextlib.contextmanager
def _site() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="bench-static-") as work:
        root = Path(work, "site")
        root.mkdir()
        for name, size in FILES.items():
            (root / name).write_bytes(os.urandom(size))
        os.chmod(work, 0o755)  # nginx's worker may run as another user
        yield root


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_accepting(proc: subprocess.Popen[str], port: int, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}") from None
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} not accepting after {STARTUP_TIMEOUT_S:g}s") from None
            time.sleep(0.05)


@contextlib.contextmanager
def _server(peer: str, root: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``peer``'s server on ``root``, pinned to SERVER_CORE: (process, port)."""
    popen: dict[str, Any] = {"stdout": subprocess.PIPE, "start_new_session": True}
    if peer == "nettools":
        cmd = [sys.executable, "-m", "nettools", "-q", "static", str(root),
               "--listen", f"{HOST}:0", "--max-conns", "10000"]  # fmt: skip
    elif peer == "http.server":
        cmd = [sys.executable, "-u", "-m", "http.server", "0", "--bind", HOST,
               "--directory", str(root)]  # fmt: skip
    else:
        nginx = ensure_program("nginx", "nginx")
        port = _free_port()
        work = root.parent
        conf = work / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            user="user root;" if os.geteuid() == 0 else "", work=work, host=HOST, port=port,
            root=root))  # fmt: skip
        cmd = [nginx, "-p", str(work), "-c", str(conf), "-e", "stderr"]
        popen = {"stdout": subprocess.DEVNULL, "start_new_session": True}
    with started(cmd, SERVER_CORE, **popen) as proc:
        try:
            if peer == "nettools":
                port = ready_port(proc, STARTUP_TIMEOUT_S, "nettools static start")
            elif peer == "http.server":
                line = read_line(proc, proc.stdout, STARTUP_TIMEOUT_S, "http.server start")
                port = int(re.search(r"port (\d+)", line).group(1))
            else:
                _wait_accepting(proc, port, "nginx")
            yield proc, port
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # nginx's worker too


def httpload_client(url: str, conns: int = CONNECTIONS) -> Callable[[int], dict[str, Any]]:
    """A ``measure_load`` client: bench/loadgen/httpload.py on ``url``, pinned to CLIENT_CORE
    (it drops bodies in the kernel: see its docstring)."""

    def run(seconds: int) -> dict[str, Any]:
        out = subprocess.run([sys.executable, "-m", "bench.loadgen.httpload", "-c", str(conns),
                              "-d", str(seconds), url],
                             capture_output=True, text=True, preexec_fn=pin(CLIENT_CORE),
                             cwd=REPO_ROOT, check=True).stdout  # fmt: skip
        metrics = json.loads(out)
        del metrics["cpu_us_per_req"]  # measure_load derives client_us_per_req from cpu_s
        return metrics

    return run


CLIENTS = {"wrk": wrk_client, "httpload": httpload_client}


def run_static(peer: str, name: str, duration_ms: int, client: str = "wrk") -> dict[str, Any]:
    """One fresh ``peer`` server under ``client`` with 100 connections for the file ``name``."""
    with _site() as root, _server(peer, root) as (proc, port):
        load = CLIENTS[client](f"http://{HOST}:{port}/{name}", CONNECTIONS)
        metrics = measure_load(proc, load, duration_ms, peer)
    metrics["gbit_s"] = metrics["ops_per_s"] * FILES[name] * 8 / 1e9
    return metrics


def _case(name: str, client: str) -> Case:
    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            return None if n == 0 else run_static(peer, name, n, client)

        return run

    return Case(n=5000, unit="requests", warmup=0,
                peers={peer: for_peer(peer) for peer in PEERS},
                compare=("p99_us", "server_us_per_req"))  # fmt: skip


CASES: dict[str, Case] = {
    "static_1k_c100": _case("1k.bin", "wrk"),
    "static_1m_c100": _case("1m.bin", "httpload"),
}
