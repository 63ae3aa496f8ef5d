"""TCP forwarder throughput under iperf3: Mbit/s through one forwarder that has one core.

Each run starts an iperf3 server and, for every peer but ``direct``, a forwarder in front of it,
then runs an iperf3 client through the forwarder for ``n`` seconds (after one omitted second of
slow start). The iperf3 server and client share core 0; the forwarder has core 1 to itself, so
the figure is what one core of forwarding sustains. Peers:

* ``nettools``: ``nettools forward 0:PORT`` (splice on Linux); ``forward_iperf3_nosplice`` runs it
  with ``--no-splice``, the recv_into/sendall path TLS connections use;
* ``direct``: no forwarder, the ceiling that loopback and iperf3 allow on this machine;
* ``socat``: ``socat TCP-LISTEN:PORT,fork TCP:127.0.0.1:PORT``;
* ``haproxy``: HAProxy in TCP mode, one thread (``nbthread 1``), splicing both directions
  (``option splice-request`` / ``splice-response``);
* ``gevent``, ``eventlet``: the textbook forwarder, written out below: one greenthread per
  direction copying with ``recv_into``/``sendall`` through a 256 KiB buffer (the size the
  nettools copy path grows to, so the comparison is not about buffer sizes).

``forward_iperf3_p100`` is the same with 100 parallel streams (``iperf3 -P 100``) against
HAProxy and the ceiling.

``forward_connrate`` measures the connection rate instead: connections per second through the
forwarder, each sending 1 KiB and closing, 100 at a time, from one uvloop process on core 0
(``python -m bench.cases.forward conns``) to a sink in the same process that reads each
connection to its end; besides the rate it reports ``cpu_us_per_conn``, the forwarder's CPU
time per connection.

iperf3, socat and haproxy are Debian packages; a run installs whichever is missing with apt-get (as
root), or fails saying how to install it. Besides Mbit/s (the "ops") a run reports ``gbit_s``,
``core1_busy_pct``, how busy the forwarder's core was (near 100 with a forwarder: it is the
bottleneck, or shares its core with other work), and ``cpu_ms_per_gb``, the forwarder's own CPU
time per GB moved -- its cost, and the figure to trust when the machine is not quiet.

    python -m bench.cases.forward serve gevent|eventlet TARGET_PORT   # a peer forwarder
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.cases import Case, CaseFn, Result, _toxics
from bench.cases._procs import ensure_program, read_line, ready_port, started

IPERF_CORE = 0
FORWARDER_CORE = 1
STARTUP_TIMEOUT_S = 30.0
OMIT_S = 1  # iperf3 -O: seconds of TCP slow start left out of the figure
COPY_BUFFER = 256 * 1024
PARALLEL_STREAMS = 100  # iperf3 -P of forward_iperf3_p100
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- tools and processes ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    """Whether something listens on TCP ``port``, without connecting to it (a probe
    connection would reach iperf3 through a forwarder and upset it)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def _wait_listening(proc: subprocess.Popen[str], port: int, what: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _listening(port):
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with status {proc.returncode} before listening")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} not listening after {STARTUP_TIMEOUT_S:g}s")
        time.sleep(0.02)


@contextlib.contextmanager
def _iperf_server() -> Iterator[int]:
    iperf3 = ensure_program("iperf3", "iperf3")
    port = _free_port()
    cmd = [iperf3, "-s", "-B", "127.0.0.1", "-p", str(port)]
    with started(cmd, IPERF_CORE, stdout=subprocess.DEVNULL) as proc:
        _wait_listening(proc, port, "iperf3 server")
        yield port


#: HAProxy as a plain TCP forwarder on one thread, splicing as ``nettools forward`` does.
HAPROXY_CONFIG = """
global
    nbthread 1
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    option splice-request
    option splice-response
listen forward
    bind 127.0.0.1:{port}
    server target 127.0.0.1:{target}
"""


@contextlib.contextmanager
def _forwarder(peer: str, target: int) -> Iterator[tuple[int, int]]:
    """The peer's forwarder to 127.0.0.1:``target``, listening; yields its port and pid."""
    if peer == "socat":
        port = _free_port()
        cmd = [ensure_program("socat", "socat"), f"TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork",
               f"TCP:127.0.0.1:{target}"]
        # start_new_session: socat forks a child per connection; kill them all at the end.
        with started(cmd, FORWARDER_CORE, start_new_session=True) as proc:
            try:
                _wait_listening(proc, port, "socat")
                yield port, proc.pid
            finally:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, 9)
        return
    if peer == "haproxy":
        port = _free_port()
        with tempfile.NamedTemporaryFile("w", suffix=".cfg", prefix="bench-haproxy-") as cfg:
            cfg.write(HAPROXY_CONFIG.format(port=port, target=target))
            cfg.flush()
            cmd = [ensure_program("haproxy", "haproxy"), "-db", "-f", cfg.name]
            with started(cmd, FORWARDER_CORE) as proc:
                _wait_listening(proc, port, "haproxy")
                yield port, proc.pid
        return
    if peer in ("nettools", "nettools-nosplice"):
        cmd = [sys.executable, "-m", "nettools", "-q", "forward", f"0:{target}"]
        if peer == "nettools-nosplice":
            cmd.append("--no-splice")
    else:
        cmd = [sys.executable, "-m", "bench.cases.forward", "serve", peer, str(target)]
    # stderr is inherited: a crashing forwarder's traceback lands in this run's error report.
    with started(cmd, FORWARDER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE) as proc:
        yield ready_port(proc, STARTUP_TIMEOUT_S, f"{peer} forwarder"), proc.pid


def _core_busy_jiffies(core: int) -> tuple[int, int]:
    """``(busy, total)`` jiffies of ``core`` so far, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            return sum(values) - idle, sum(values)
    return 0, 0


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and its children, live or already reaped (socat forks one per
    connection)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(entry) == pid:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
        elif int(fields[1]) == pid:
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def _iperf_client(port: int, seconds: int, streams: int = 1) -> dict[str, Any]:
    iperf3 = ensure_program("iperf3", "iperf3")
    cmd = [iperf3, "-c", "127.0.0.1", "-p", str(port), "-t", str(seconds),
           "-O", str(OMIT_S), "-P", str(streams), "-J"]
    with started(cmd, IPERF_CORE, stdout=subprocess.PIPE) as proc:
        out, _ = proc.communicate(timeout=seconds + OMIT_S + STARTUP_TIMEOUT_S)
    result = json.loads(out)
    if "error" in result:
        raise RuntimeError(f"iperf3: {result['error']}")
    return result


def _throughput(peer: str, seconds: int, streams: int = 1) -> dict[str, Any]:
    pid = None
    with contextlib.ExitStack() as stack:
        port = stack.enter_context(_iperf_server())
        if peer != "direct":
            port, pid = stack.enter_context(_forwarder(peer, port))
            cpu0 = _cpu_seconds(pid)
        busy0, total0 = _core_busy_jiffies(FORWARDER_CORE)
        result = _iperf_client(port, seconds, streams)
        busy1, total1 = _core_busy_jiffies(FORWARDER_CORE)
        if pid is not None:
            cpu1 = _cpu_seconds(pid)
    bits_per_s = result["end"]["sum_received"]["bits_per_second"]
    metrics = {
        "ops_per_s": bits_per_s / 1e6,
        "seconds": result["end"]["sum_received"]["seconds"],
        "gbit_s": bits_per_s / 1e9,
        "retransmits": result["end"]["sum_sent"].get("retransmits", 0),
    }
    if total1 > total0:
        metrics["core1_busy_pct"] = 100.0 * (busy1 - busy0) / (total1 - total0)
    if pid is not None:
        # The forwarder's own CPU time per GB moved, slow start included: its cost, far
        # less disturbed than Mbit/s when other work shares the machine.
        moved_gb = sum(iv["sum"]["bytes"] for iv in result["intervals"]) / 1e9  # omitted too
        metrics["cpu_ms_per_gb"] = 1000.0 * (cpu1 - cpu0) / moved_gb
    return metrics


# --- connection rate -----------------------------------------------------------------------

CONN_PAYLOAD = 1024
CONN_CONCURRENCY = 100


async def _conn_load(seconds: float) -> None:
    """Sink and clients in one uvloop process: prints the sink's port, reads the forwarder's
    port from stdin, then runs CONN_CONCURRENCY clients for ``seconds``; prints the count."""
    import asyncio

    loop = asyncio.get_running_loop()
    payload = b"x" * CONN_PAYLOAD
    received = 0

    class Sink(asyncio.Protocol):
        def data_received(self, data: bytes) -> None:
            nonlocal received
            received += len(data)

    server = await loop.create_server(Sink, "127.0.0.1", 0, backlog=1024)
    print(json.dumps({"port": server.sockets[0].getsockname()[1]}), flush=True)
    port = int(await loop.run_in_executor(None, sys.stdin.readline))
    done = 0
    failed = 0
    deadline = time.monotonic() + seconds

    async def client() -> None:
        nonlocal done, failed
        while time.monotonic() < deadline:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.write(payload)
                writer.write_eof()
                await reader.read()  # the forwarder closes once the sink has closed
                writer.close()
                done += 1
            except OSError:
                failed += 1

    start = time.monotonic()
    await asyncio.gather(*(client() for _ in range(CONN_CONCURRENCY)))
    elapsed = time.monotonic() - start
    server.close()
    print(json.dumps({"connections": done, "failed": failed, "seconds": elapsed,
                      "sink_bytes": received}), flush=True)


def _connection_rate(peer: str, seconds: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.cases.forward", "conns", str(seconds)]
    with started(cmd, IPERF_CORE, cwd=REPO_ROOT, stdin=subprocess.PIPE,
                 stdout=subprocess.PIPE) as load:
        sink = ready_port(load, STARTUP_TIMEOUT_S, "connection load")
        with _forwarder(peer, sink) as (port, pid):
            cpu0 = _cpu_seconds(pid)
            load.stdin.write(f"{port}\n")
            load.stdin.flush()
            line = read_line(load, load.stdout, seconds + STARTUP_TIMEOUT_S, "connection load")
            cpu = _cpu_seconds(pid) - cpu0
    result = json.loads(line)
    if not result["connections"]:
        raise RuntimeError(f"no connection went through: {result}")
    if result["sink_bytes"] < result["connections"] * CONN_PAYLOAD:
        raise RuntimeError(f"the sink got less than was sent: {result}")
    return {
        "ops_per_s": result["connections"] / result["seconds"],
        "seconds": result["seconds"],
        "failed": result["failed"],
        "cpu_us_per_conn": 1e6 * cpu / result["connections"],
    }


# --- the gevent and eventlet forwarders -----------------------------------------------------


def _pump(src: Any, dst: Any) -> None:
    """One direction of the textbook forwarder, on either library's green sockets."""
    buf = bytearray(COPY_BUFFER)
    view = memoryview(buf)
    try:
        while True:
            n = src.recv_into(buf)
            if not n:
                break
            dst.sendall(view[:n])
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        for sock in (src, dst):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


def _serve_gevent(target: int) -> None:
    import gevent
    from gevent import socket as gsocket
    from gevent.server import StreamServer

    def handle(client: Any, _addr: Any) -> None:
        upstream = gsocket.create_connection(("127.0.0.1", target))
        with upstream:
            other = gevent.spawn(_pump, upstream, client)
            _pump(client, upstream)
            other.join()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    print(json.dumps({"port": server.server_port}), flush=True)
    server.serve_forever()


def _serve_eventlet(target: int) -> None:
    import eventlet
    from eventlet.green import socket as esocket

    def handle(client: Any) -> None:
        with client, esocket.create_connection(("127.0.0.1", target)) as upstream:
            other = eventlet.spawn(_pump, upstream, client)
            _pump(client, upstream)
            other.wait()

    listener = eventlet.listen(("127.0.0.1", 0))
    print(json.dumps({"port": listener.getsockname()[1]}), flush=True)
    pool = eventlet.GreenPool(10_000)
    while True:
        client, _addr = listener.accept()
        pool.spawn_n(handle, client)


_SERVERS = {"gevent": _serve_gevent, "eventlet": _serve_eventlet}


# --- cases --------------------------------------------------------------------------------


def _peer(peer: str, streams: int = 1) -> CaseFn:
    def run(n: int) -> Result:
        if n == 0:
            return None  # the harness's warm-up call; iperf3 -O leaves out slow start itself
        return _throughput(peer, n, streams)

    return run


def _connrate_peer(peer: str) -> CaseFn:
    def run(n: int) -> Result:
        return None if n == 0 else _connection_rate(peer, n)

    return run


CASES: dict[str, Case] = {
    # n is the iperf3 run in seconds.
    "forward_iperf3": Case(n=5, unit="Mbit", warmup=0, compare=("cpu_ms_per_gb",), peers={
        peer: _peer(peer)
        for peer in ("nettools", "direct", "haproxy", "socat", "gevent", "eventlet")}),
    # PARALLEL_STREAMS connections at once (iperf3 -P): the same bytes spread over many
    # connections, so the cost of waking and switching between them counts.
    "forward_iperf3_p100": Case(n=5, unit="Mbit", warmup=0, compare=("cpu_ms_per_gb",), peers={
        peer: _peer(peer, PARALLEL_STREAMS) for peer in ("nettools", "direct", "haproxy")}),
    # The copy path alone (what TLS connections use), with the ceiling for its ratio.
    "forward_iperf3_nosplice": Case(n=5, unit="Mbit", warmup=0, peers={
        "nettools": _peer("nettools-nosplice"), "direct": _peer("direct")}),
    # n is the run in seconds: short connections of 1 KiB each, 100 at a time.
    "forward_connrate": Case(n=5, unit="connections", warmup=0, compare=("cpu_us_per_conn",),
                             peers={peer: _connrate_peer(peer)
                                    for peer in ("nettools", "haproxy", "socat")}),
    # How exact the toxics are, set through the Toxiproxy API (see _toxics.py); n round trips.
    "forward_toxics": Case(n=100, unit="round trips", warmup=0, peers={
        "nettools": lambda n: _toxics.measure(n) if n else None}),
}


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "conns":
        import uvloop

        uvloop.run(_conn_load(float(sys.argv[2])))
        sys.exit(0)
    if len(sys.argv) != 4 or sys.argv[1] != "serve" or sys.argv[2] not in _SERVERS:
        sys.exit(f"usage: python -m bench.cases.forward serve {'|'.join(_SERVERS)} TARGET_PORT\n"
                 "       python -m bench.cases.forward conns SECONDS")
    _SERVERS[sys.argv[2]](int(sys.argv[3]))
