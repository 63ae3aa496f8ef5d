"""TCP echo servers under an external load generator: round trips/s, latency, idle memory.

Each run starts the peer's echo server (bench/cases/_echo_servers.py) in its own process pinned
to core 1 and the compiled load generator (bench/loadgen/echoload.c) pinned to core 0, so that
the server has one core to itself and the client costs it nothing. A Python client would
measure itself as much as the server.

* ``echo_cC_S``: C connections each doing closed-loop ping-pong with S-byte messages. ``n`` is
  the measured time in milliseconds, after a one-second warm-up done by the load generator.
  Reports round trips/s and the p50/p99 round-trip latency in microseconds, the CPU share of
  server and client, and ``disturbed_pct``: how much of their two cores other processes used
  meanwhile. A run disturbed beyond DISTURBED_PCT is measured again (``attempts``).
* ``mem_idle_10k``: ``n`` idle connections (10,000 by default), each through one round trip
  so that the server has accepted it and its handler waits in recv. Reports the server's RSS
  growth per connection in KiB; its "ops/s" is the rate at which the connections were set up.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import loadgen
from bench.cases import Case, CaseFn, Result
from bench.cases._echo_servers import HOST, SERVERS
from bench.cases._procs import idle_cost, ready_port, started

SERVER_CORE = 1
CLIENT_CORE = 0
WARMUP_S = 1.0
STARTUP_TIMEOUT_S = 30.0
IDLE_SETUP_TIMEOUT_S = 90.0
# A round-trip run in which other processes used more than DISTURBED_PCT percent of the two
# cores is repeated, up to MAX_ATTEMPTS runs in all (see _round_trips).
DISTURBED_PCT = 5.0
MAX_ATTEMPTS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]


# --- processes ----------------------------------------------------------------------------


@contextlib.contextmanager
def _echo_server(peer: str) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """The peer's echo server, running and listening; yields the process and its port."""
    cmd = [sys.executable, "-m", "bench.cases._echo_servers", peer]
    # stderr is inherited: a crashing server's traceback lands in this run's error report.
    with started(cmd, SERVER_CORE, cwd=REPO_ROOT, stdout=subprocess.PIPE) as proc:
        yield proc, ready_port(proc, STARTUP_TIMEOUT_S, f"{peer} echo server start")


# --- the two measurements -----------------------------------------------------------------


def _run_echoload(peer: str, conns: int, size: int, duration_ms: int) -> dict[str, Any]:
    """One fresh server and one load generator run; echoload's JSON result."""
    echoload = loadgen.echoload()
    with _echo_server(peer) as (server, port):
        cmd = [str(echoload), "-c", str(conns), "-s", str(size), "-w", str(WARMUP_S),
               "-d", str(duration_ms / 1000), "-p", str(server.pid), HOST, str(port)]
        with started(cmd, CLIENT_CORE, stdout=subprocess.PIPE) as client:
            timeout = STARTUP_TIMEOUT_S + WARMUP_S + duration_ms / 1000
            out, _ = client.communicate(timeout=timeout)
            if client.returncode != 0:
                raise RuntimeError(f"echoload failed with exit status {client.returncode}")
        if server.poll() is not None:
            raise RuntimeError(f"{peer} echo server died (exit status {server.returncode})")
    return json.loads(out)


def _disturbance(result: dict[str, Any]) -> float:
    """Percent of the client's and server's cores that other processes used (0 if unknown)."""
    parts = (result["client_core_other_pct"], result["server_core_other_pct"])
    return sum(p for p in parts if p > 0)


def _round_trips(peer: str, conns: int, size: int, duration_ms: int) -> dict[str, Any]:
    # On a shared machine another process can take turns on either core mid-run and cut the
    # figure by half; such a run is measured again, and the least disturbed one is kept.
    best: dict[str, Any] = {}
    attempts = 0
    while attempts < MAX_ATTEMPTS and (not best or _disturbance(best) > DISTURBED_PCT):
        attempts += 1
        result = _run_echoload(peer, conns, size, duration_ms)
        if not best or _disturbance(result) < _disturbance(best):
            best = result
    metrics = {
        "ops_per_s": best["round_trips_per_s"],
        "seconds": best["seconds"],
        "p50_us": best["p50_us"],
        "p99_us": best["p99_us"],
        "errors": best["errors"],
        # Below ~100 the server was not the bottleneck (expected with few connections).
        "server_cpu_pct": best["server_cpu_pct"],
        # Near 100 the load generator, not the server, sets the pace.
        "client_cpu_pct": best["client_cpu_pct"],
        "disturbed_pct": _disturbance(best),
        "attempts": attempts,
    }
    if best["conn_max_round_trips"]:
        # Fewest over most round trips any one connection made: 1.0 is perfectly fair.
        metrics["fairness"] = best["conn_min_round_trips"] / best["conn_max_round_trips"]
    if best["server_cpu_pct"] >= 0 and best["round_trips"]:  # -1: /proc unreadable
        # The server's cost per round trip; lower with more connections (bigger epoll batches).
        server_cpu_s = best["server_cpu_pct"] / 100 * best["seconds"]
        metrics["server_us_per_rt"] = server_cpu_s / best["round_trips"] * 1e6
    return metrics


def _idle_memory(peer: str, conns: int) -> dict[str, Any]:
    echoload = loadgen.echoload()
    with _echo_server(peer) as (server, port):
        cmd = [str(echoload), "-i", "-c", str(conns), "-s", "64", HOST, str(port)]
        return idle_cost(server.pid, cmd, conns, CLIENT_CORE, IDLE_SETUP_TIMEOUT_S)


# --- cases --------------------------------------------------------------------------------


def _echo_case(conns: int, size: int) -> Case:
    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            if n == 0:
                return None  # the harness's warm-up call; echoload warms up by itself
            return _round_trips(peer, conns, size, n)

        return run

    return Case(n=3000, unit="round trips", warmup=0,
                peers={peer: for_peer(peer) for peer in SERVERS},
                compare=("p99_us", "server_us_per_rt"))


def _memory_case(conns: int) -> Case:
    def for_peer(peer: str) -> CaseFn:
        def run(n: int) -> Result:
            return None if n == 0 else _idle_memory(peer, n)

        return run

    return Case(n=conns, unit="connections set up", warmup=0,
                peers={peer: for_peer(peer) for peer in SERVERS},
                compare=("kib_per_conn",))


CASES: dict[str, Case] = {
    "echo_c10_64": _echo_case(10, 64),
    "echo_c100_64": _echo_case(100, 64),
    "echo_c1000_64": _echo_case(1000, 64),
    "echo_c100_4k": _echo_case(100, 4096),
    "echo_c1000_4k": _echo_case(1000, 4096),
    "mem_idle_10k": _memory_case(10_000),
}
