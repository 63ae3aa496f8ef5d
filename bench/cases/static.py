"""Static files under wrk: requests/s for a 1 KiB and a 1 MiB file, wrk -t1 -c100.

Each run starts one peer's server on a directory holding both files, pinned to core 1, and
runs wrk pinned to core 0 (``wsgi.measure_wrk``: a warm-up second, then ``n`` milliseconds).
Peers:

* ``nettools``: ``nettools static DIR`` (its cache answers the small file in one send; the
  large one goes out with sendfile);
* ``http.server``: ``python -m http.server`` (threads, one connection per request), what a CI
  job reaches for;
* ``nginx``: Debian's nginx, one worker, ``sendfile on``, ``tcp_nopush on``, no access log;
  installed with apt-get when missing (as root), else the run fails saying how to install it.

Metrics as in the WSGI case: requests/s, p50/p99 latency (us), errors,
``server_us_per_req``, the server's CPU per request (master and worker for nginx), and wrk's
side (``client_us_per_req``, ``client_cpu_pct``, ``client_core_idle_pct``).

Reading the 1 MiB case: nettools answers with its head (``MSG_MORE``) and one ``sendfile`` of
the whole file, the same two calls as nginx, for 150-250 us of CPU.  wrk, on its one core,
reads each response 8 KiB at a time and pays the kernel's copy of every byte into its buffer:
265-390 us of CPU per 1 MiB response, so it, not the server, sets the pace (at most about
3,500 requests/s on a core of its own).  ``http.server`` needs 600-1,000 us of its own CPU per
response, so the requests/s ratio against it is capped near ``http.server``'s
``server_us_per_req`` over the fast peer's ``client_us_per_req`` (2-3x), whatever the fast
server does; the CPU-per-request ratio is the server's own figure.
"""

from __future__ import annotations

import contextlib
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result
from bench.cases._procs import ensure_program, read_line, ready_port, started
from bench.cases.wsgi import measure_wrk

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


def run_static(peer: str, name: str, duration_ms: int) -> dict[str, Any]:
    """One fresh ``peer`` server under wrk -c100 for the file ``name``."""
    with _site() as root, _server(peer, root) as (proc, port):
        metrics = measure_wrk(proc, f"http://{HOST}:{port}/{name}", duration_ms, CONNECTIONS,
                              peer)  # fmt: skip
    metrics["gbit_s"] = metrics["ops_per_s"] * FILES[name] * 8 / 1e9
    return metrics


def _case(name: str) -> Case:
    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            return None if n == 0 else run_static(peer, name, n)

        return run

    return Case(n=5000, unit="requests", warmup=0,
                peers={peer: for_peer(peer) for peer in PEERS},
                compare=("p99_us", "server_us_per_req"))  # fmt: skip


CASES: dict[str, Case] = {
    "static_1k_c100": _case("1k.bin"),
    "static_1m_c100": _case("1m.bin"),
}
