"""Hello-world WSGI servers under wrk: requests/s, latency, server CPU per request.

Each run starts one peer's server (``python -m bench.cases.wsgi serve PEER``) pinned to core 1
and ``wrk -t1 -c100`` pinned to core 0, so the server has one core to itself. Peers:

* ``nettools``: nettools.web.wsgi (httptools parser);
* ``nettools-h11``: the same server on an h11 parser adapter (H11Parser below), to compare the
  two parsers inside one server;
* ``gevent``: gevent.pywsgi, with TCP_NODELAY set on every accepted socket (without it Nagle's
  algorithm holds back each response and the server looks six times slower);
* ``eventlet``: eventlet.wsgi (its listener gets TCP_NODELAY, which accepted sockets inherit);
* ``gunicorn``: gunicorn's sync worker, one worker (it closes the connection after each response).

The case ``wsgi_gunicorn_workers_c100`` compares gunicorn's green workers, one worker process
each: ``gunicorn-nettools`` (``-k nettools.gunicorn.Worker``), ``gunicorn-eventlet`` and
``gunicorn-gevent``.

``n`` is the measured time in milliseconds (wrk's -d). Metrics: requests/s, p50/p99 latency in
microseconds, wrk's error count, and ``server_us_per_req``: the CPU time the server's processes
used per request -- the figure least disturbed by other load on a shared machine.
``client_us_per_req``, ``client_cpu_pct`` and ``client_core_idle_pct`` are wrk's side: its CPU
per request, its share of its core, and how much of that core nobody used (near 0: the load
generator, not the server, set the pace).

``python -m bench.cases.wsgi table [--duration S] [--repeat N] [--peers a,b]`` measures every
peer round-robin without the harness and prints medians and ratios; wrk is installed with
apt-get when missing.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import socket
import statistics
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result
from bench.cases._procs import ensure_program, pin, read_line, started

HOST = "127.0.0.1"
SERVER_CORE = 1
CLIENT_CORE = 0
CONNECTIONS = 100
WARMUP_S = 1
STARTUP_TIMEOUT_S = 30.0
BACKLOG = 1024
REPO_ROOT = Path(__file__).resolve().parents[2]
BODY = b"Hello, World!"


def hello_app(environ: dict, start_response: Callable) -> list[bytes]:
    """The application every peer serves."""
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [BODY]


def announce(port: int) -> None:
    print(json.dumps({"event": "listening", "port": port}), flush=True)


def listener() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted sockets inherit TCP_NODELAY from the listener on Linux.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((HOST, 0))
    sock.listen(BACKLOG)
    return sock


# --- an h11 parser behind httptools' interface, for the parser comparison -----------------


class H11Parser:
    """``httptools.HttpRequestParser``'s interface on h11: enough for GET/POST benchmarks.

    h11 parses one request per ``Connection`` cycle and waits for the response before the
    next; as a parser only, a fresh ``Connection`` takes over the bytes left after each
    request.
    """

    def __init__(self, protocol: Any) -> None:
        import h11

        self._h11 = h11
        self._p = protocol
        self._conn = h11.Connection(h11.SERVER)
        self._method = b"GET"
        self._version = "1.1"
        self._keep_alive = True

    def feed_data(self, data: Any) -> None:
        import httptools

        h11 = self._h11
        conn = self._conn
        conn.receive_data(bytes(data))
        p = self._p
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise httptools.HttpParserError(str(exc)) from None
            kind = type(event)
            if kind is h11.Request:
                p.on_message_begin()
                p.on_url(event.target)
                connection = b""
                for name, value in event.headers.raw_items():
                    p.on_header(name, value)
                    if name.lower() == b"connection":
                        connection = value.lower()
                self._method = event.method
                self._version = event.http_version.decode()
                if self._version == "1.1":
                    self._keep_alive = b"close" not in connection
                else:
                    self._keep_alive = b"keep-alive" in connection
                p.on_headers_complete()
            elif kind is h11.Data:
                p.on_body(bytes(event.data))
            elif kind is h11.EndOfMessage:
                p.on_message_complete()
            elif event is h11.PAUSED:
                rest, _closed = conn.trailing_data
                conn = self._conn = h11.Connection(h11.SERVER)
                conn.receive_data(bytes(rest))
            else:  # NEED_DATA or ConnectionClosed
                return

    def get_method(self) -> bytes:
        return self._method

    def get_http_version(self) -> str:
        return self._version

    def should_keep_alive(self) -> bool:
        return self._keep_alive

    def should_upgrade(self) -> bool:
        return False


# --- the servers, one per peer ------------------------------------------------------------


def serve_nettools(parser: Any = None) -> None:
    import nettools
    from nettools.web import wsgi

    sock = nettools.listen((HOST, 0), backlog=BACKLOG)
    announce(sock.getsockname()[1])
    options = {"parser": parser} if parser is not None else {}
    wsgi.server(sock, hello_app, log_output=False, max_size=10_000, **options)


def serve_gevent() -> None:
    from gevent.pywsgi import WSGIServer

    class NoDelayServer(WSGIServer):
        def handle(self, sock: Any, address: Any) -> Any:
            # Set (and checked) on every accepted socket: gevent does not do it by itself.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            return super().handle(sock, address)

    server = NoDelayServer((HOST, 0), hello_app, log=None, backlog=BACKLOG)
    server.init_socket()
    announce(server.server_port)
    server.serve_forever()


def serve_eventlet() -> None:
    import eventlet
    import eventlet.wsgi

    sock = eventlet.listen((HOST, 0), backlog=BACKLOG)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    announce(sock.getsockname()[1])
    eventlet.wsgi.server(sock, hello_app, log_output=False, max_size=10_000)


def serve_gunicorn(worker_class: str = "sync") -> None:
    sock = listener()
    announce(sock.getsockname()[1])
    os.set_inheritable(sock.fileno(), True)
    # gunicorn takes the bound socket over (fd://), so the announced port is the real one.
    os.execv(sys.executable, [
        sys.executable, "-m", "gunicorn", "--bind", f"fd://{sock.fileno()}", "--workers", "1",
        "--worker-class", worker_class, "--worker-connections", "10000",
        "--backlog", str(BACKLOG), "--log-level", "warning", "--no-control-socket",
        "bench.cases.wsgi:hello_app",
    ])


def _serve_h11() -> None:
    serve_nettools(H11Parser)


def serve_nettools_cli(*extra: str) -> None:
    """``nettools serve`` itself (not patching: the app needs nothing green)."""
    os.execv(sys.executable, [
        sys.executable, "-m", "nettools", "-q", "serve", "bench.cases.wsgi:hello_app",
        "--host", HOST, "--port", "0", "--max-conns", "10000", "--no-patch", *extra,
    ])


SERVERS: dict[str, Callable[[], None]] = {
    "nettools": serve_nettools,
    "nettools-h11": _serve_h11,
    "nettools-serve": serve_nettools_cli,
    # The same with its Prometheus endpoint on: what metrics cost.
    "nettools-serve-metrics": lambda: serve_nettools_cli("--metrics", f"{HOST}:0"),
    "gevent": serve_gevent,
    "eventlet": serve_eventlet,
    "gunicorn": serve_gunicorn,
}
#: One gunicorn worker process of each green kind: -k nettools.gunicorn.Worker
#: against gunicorn's own -k eventlet and -k gevent (keep-alive, as they do).
GUNICORN_WORKERS: dict[str, Callable[[], None]] = {
    "gunicorn-nettools": lambda: serve_gunicorn("nettools.gunicorn.Worker"),
    "gunicorn-eventlet": lambda: serve_gunicorn("eventlet"),
    "gunicorn-gevent": lambda: serve_gunicorn("gevent"),
}
SERVERS.update(GUNICORN_WORKERS)


# --- measuring ----------------------------------------------------------------------------


@contextlib.contextmanager
def _server(peer: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    cmd = [sys.executable, "-m", "bench.cases.wsgi", "serve", peer]
    with started(cmd, SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                 start_new_session=True) as proc:
        try:
            line = read_line(proc, proc.stdout, STARTUP_TIMEOUT_S, f"{peer} server start")
            ready = json.loads(line)  # nettools serve's ready line has the address only
            yield proc, ready.get("port") or int(ready["address"].rpartition(":")[2])
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, 9)  # gunicorn's worker too


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its children that are alive (gunicorn's worker)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:  # fields[1]: ppid
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


_UNITS = {"us": 1.0, "ms": 1e3, "s": 1e6}


def _latency_us(text: str, pct: str) -> float:
    match = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    return float(match.group(1)) * _UNITS[match.group(2)] if match else -1.0


def parse_wrk(text: str) -> dict[str, Any]:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in ([\d.]+)s", text)
    if not rps or not total:
        raise RuntimeError(f"cannot read wrk's output:\n{text}")
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", text))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return {
        "ops_per_s": float(rps.group(1)),
        "requests": int(total.group(1)),
        "p50_us": _latency_us(text, "50"),
        "p99_us": _latency_us(text, "99"),
        "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
    }


def run_wrk(peer: str, duration_ms: int, conns: int = CONNECTIONS) -> dict[str, Any]:
    """One fresh server of ``peer`` under wrk for ``duration_ms``; the metrics."""
    with _server(peer) as (proc, port):
        return measure_load(proc, wrk_client(f"http://{HOST}:{port}/", conns), duration_ms, peer)


def wrk_client(url: str, conns: int = CONNECTIONS) -> Callable[[int], dict[str, Any]]:
    """A ``measure_load`` client: ``wrk -t1 -cCONNS --latency`` on ``url``, pinned to
    CLIENT_CORE, for the seconds it is given."""
    wrk = ensure_program("wrk", "wrk")

    def run(seconds: int) -> dict[str, Any]:
        out = subprocess.run([wrk, "-t1", f"-c{conns}", "--latency", f"-d{seconds}s", url],
                             capture_output=True, text=True, preexec_fn=pin(CLIENT_CORE),
                             check=True).stdout
        return parse_wrk(out)

    return run


def measure_load(proc: subprocess.Popen[str], client: Callable[[int], dict[str, Any]],
                 duration_ms: int, what: str = "the") -> dict[str, Any]:
    """Run ``client`` (one load generator process, pinned to CLIENT_CORE) for a warm-up,
    then for ``duration_ms`` while ``proc`` serves; the client's figures plus the server's
    CPU and the client's.

    ``client(seconds)`` returns at least ``requests``; when it also returns ``cpu_s`` (the
    CPU it used while loading, start-up excluded) that is its CPU figure, else the CPU of
    this process's waited-for children over the run."""
    seconds = max(1, round(duration_ms / 1000))
    client(WARMUP_S)
    cpu_before = cpu_seconds(proc.pid)
    client_before = _children_cpu()
    core_before = core_times(CLIENT_CORE)
    metrics = client(seconds)
    cpu = cpu_seconds(proc.pid) - cpu_before
    client_cpu = metrics.pop("cpu_s", None)
    if client_cpu is None:
        client_cpu = _children_cpu() - client_before
    core_after = core_times(CLIENT_CORE)
    busy, idle = core_after[0] - core_before[0], core_after[1] - core_before[1]
    if proc.poll() is not None:
        raise RuntimeError(f"{what} server died (exit status {proc.returncode})")
    if not metrics["requests"]:
        raise RuntimeError(f"no request answered: {metrics}")
    metrics["seconds"] = float(seconds)
    metrics["server_cpu_pct"] = 100 * cpu / seconds
    metrics["server_us_per_req"] = cpu / metrics["requests"] * 1e6
    # The load generator's side: when its core has no idle time left, the figure is the
    # generator's (or its neighbours') limit, not the server's.
    metrics["client_cpu_pct"] = 100 * client_cpu / seconds
    metrics["client_us_per_req"] = client_cpu / metrics["requests"] * 1e6
    metrics["client_core_idle_pct"] = 100 * idle / max(1, busy + idle)
    return metrics


def _children_cpu() -> float:
    """User + system seconds of this process's waited-for children (wrk's runs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def core_times(core: int) -> tuple[int, int]:
    """(busy, idle) clock ticks of ``core`` since boot, from /proc/stat (idle includes
    iowait; busy is everything else: user, system, interrupts, other processes)."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *fields = line.split()
        if name == f"cpu{core}":
            ticks = [int(f) for f in fields[:8]]
            idle = ticks[3] + ticks[4]
            return sum(ticks) - idle, idle
    return 0, 0


# --- cases --------------------------------------------------------------------------------


def _case(conns: int, servers: Mapping[str, str]) -> Case:
    """A case whose peers (names from bench.peers) each run one of ``SERVERS``."""

    def for_peer(server: str) -> CaseFn:
        def run(n: int) -> Result:
            return None if n == 0 else run_wrk(server, n, conns)

        return run

    return Case(n=5000, unit="requests", warmup=0,
                peers={peer: for_peer(server) for peer, server in servers.items()},
                compare=("p99_us", "server_us_per_req"))


CASES: dict[str, Case] = {
    "wsgi_hello_c100": _case(CONNECTIONS, {p: p for p in SERVERS if p not in GUNICORN_WORKERS}),
    # Each peer's gunicorn worker class: nettools' against -k eventlet and -k gevent.
    "wsgi_gunicorn_workers_c100": _case(
        CONNECTIONS,
        {"nettools": "gunicorn-nettools", "eventlet": "gunicorn-eventlet",
         "gevent": "gunicorn-gevent"},
    ),
}


# --- standalone table ---------------------------------------------------------------------


def table(peers: list[str], duration: float, repeat: int) -> None:
    runs: dict[str, list[dict[str, Any]]] = {p: [] for p in peers}
    for attempt in range(1, repeat + 1):
        for peer in peers:  # round-robin: drift spreads over every peer
            try:
                result = run_wrk(peer, int(duration * 1000))
            except Exception as exc:  # noqa: BLE001 - report and go on with the others
                print(f"{peer} run {attempt}: FAILED: {exc}", file=sys.stderr)
                continue
            runs[peer].append(result)
            print(f"{peer} run {attempt}: {result['ops_per_s']:,.0f} req/s, "
                  f"{result['server_us_per_req']:.1f} us CPU/req", file=sys.stderr)
    ref = runs.get("nettools") or []
    ref_rps = statistics.median(r["ops_per_s"] for r in ref) if ref else None
    ref_cpu = statistics.median(r["server_us_per_req"] for r in ref) if ref else None
    print(f"{'peer':<14}{'req/s':>10}{'p99 ms':>9}{'CPU us/req':>12}{'errors':>8}"
          f"{'nettools x':>12}{'CPU ratio':>11}")
    for peer, results in runs.items():
        if not results:
            print(f"{peer:<14}{'failed':>10}")
            continue
        rps = statistics.median(r["ops_per_s"] for r in results)
        p99 = statistics.median(r["p99_us"] for r in results) / 1000
        cpu = statistics.median(r["server_us_per_req"] for r in results)
        errors = sum(r["errors"] for r in results)
        speed = f"{ref_rps / rps:.2f}" if ref_rps else "-"
        cost = f"{cpu / ref_cpu:.2f}" if ref_cpu else "-"
        print(f"{peer:<14}{rps:>10,.0f}{p99:>9.1f}{cpu:>12.1f}{errors:>8}{speed:>12}{cost:>11}")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.cases.wsgi")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="run one peer's hello-world server")
    serve.add_argument("peer", choices=list(SERVERS))
    tab = sub.add_parser("table", help="measure peers round-robin; print medians and ratios")
    tab.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    tab.add_argument("--repeat", type=int, default=3, help="runs per peer (default 3)")
    tab.add_argument("--peers", default=",".join(SERVERS), help="comma-separated subset")
    args = parser.parse_args(argv)
    if args.command == "serve":
        SERVERS[args.peer]()
        return 0
    peers = args.peers.split(",")
    unknown = set(peers) - set(SERVERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")
    table(peers, args.duration, args.repeat)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
