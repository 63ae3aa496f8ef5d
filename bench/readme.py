"""The README's benchmark table, written from the results of `make bench` runs.

    python -m bench.readme [RESULTS.json ...] [--readme README.md] [--check]

Rewrites what stands between the README's ``<!-- bench-table -->`` and ``<!-- /bench-table -->``
markers: one row per case below that the results hold, nettools' median beside every peer's
with the ratio, and above the table the machine, the date and the load of the runs it comes
from. Several result files may be given (a full run, then a case measured again): a later file's
case replaces an earlier one's. Cases absent from every file are left out rather than guessed.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.peers import REFERENCE

START, END = "<!-- bench-table -->", "<!-- /bench-table -->"
DEFAULT_RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"
DEFAULT_README = Path(__file__).resolve().parents[1] / "README.md"


@dataclass(frozen=True)
class Row:
    """A table row: a case, and either its rate (``metric`` None) or one of its metrics."""

    case: str
    label: str
    metric: str | None = None
    lower_is_better: bool = False


ROWS: tuple[Row, ...] = (
    Row("micro.spawn_join", "spawn + join, 100k greenthreads (per s)"),
    Row("micro.queue_pingpong", "queue ping-pong (round trips/s)"),
    Row("micro.sleep0", "`sleep(0)` (calls/s)"),
    Row("echo.echo_c10_64", "echo, 10 connections x 64 B (round trips/s)"),
    Row("echo.echo_c100_64", "echo, 100 connections x 64 B (round trips/s)"),
    Row("echo.echo_c1000_64", "echo, 1000 connections x 64 B (round trips/s)"),
    Row("echo.echo_c1000_64", "echo p99 at 1000 connections (us, lower is better)", "p99_us",
        True),
    Row("echo.mem_idle_10k", "memory per idle echo connection, 10k open (KiB, lower is better)",
        "kib_per_conn", True),
    Row("wsgi.wsgi_hello_c100", "hello-world WSGI, wrk -c100 (requests/s)"),
    Row("wsgi.wsgi_gunicorn_workers_c100", "gunicorn workers, wrk -c100 (requests/s)"),
    Row("static.static_1k_c100", "static 1 KiB file, wrk -c100 (requests/s)"),
    Row("static.static_1m_c100", "static 1 MiB file, httpload -c100 (requests/s)"),
    Row("websocket.ws_echo_c100_64", "websocket echo, 100 clients (round trips/s)"),
    Row("websocket.ws_mem_idle_10k", "memory per idle websocket, 10k open (KiB, lower is "
        "better)", "kib_per_conn", True),
    Row("socketio.socketio_echo_c100_64", "Socket.IO echo, 100 clients (round trips/s)"),
    Row("forward.forward_iperf3", "forwarder, iperf3 one stream (Mbit/s)"),
    Row("forward.forward_iperf3_p100", "forwarder, iperf3 100 streams (Mbit/s)"),
    Row("forward.forward_connrate", "forwarder, short connections (per s)"),
    Row("forward.forward_connrate", "forwarder CPU per short connection (us, lower is better)",
        "cpu_us_per_conn", True),
    Row("crawl.crawl_5000_c100", "crawl, 5,000 pages at 20 ms (pages/s)"),
    Row("zmq.zmq_push_pull", "zmq PUSH/PULL (messages/s)"),
    Row("zmq.zmq_req_rep", "zmq REQ/REP (round trips/s)"),
    Row("zmq.zmq_proxy", "zmq proxy, streamer (messages/s)"),
)  # fmt: skip


def merge(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Each case's result from the last run that holds it, with that run's facts."""
    cases: dict[str, dict[str, Any]] = {}
    for run in runs:
        for name, case in run.get("cases", {}).items():
            cases[name] = {**case, "run": run}
    return cases


def _value(result: dict[str, Any], row: Row) -> float | None:
    if row.metric is None:
        return result.get("median_ops_per_s")
    return result.get("metrics_median", {}).get(row.metric)


def _figure(value: float) -> str:
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"


def row_cells(row: Row, case: dict[str, Any]) -> tuple[str, str] | None:
    """``(nettools' figure, the peers' figures with ratios)``, or None when nettools has none."""
    peers = {p: _value(r, row) for p, r in case["peers"].items() if r.get("status") == "ok"}
    ours = peers.pop(REFERENCE, None)
    if not ours:
        return None
    ranked = sorted(((v, p) for p, v in peers.items() if v), reverse=not row.lower_is_better)
    others = " · ".join(f"{p} {_figure(v)} ({ours / v:.2f}x)" for v, p in ranked)
    return _figure(ours), others or "(no peer measured)"


def render(cases: dict[str, dict[str, Any]]) -> str:
    """The markdown between the markers: where the figures come from, then the table (rows
    marked with their run's number when there are several runs)."""
    rows: list[tuple[Row, tuple[str, str], dict[str, Any]]] = []
    runs: list[dict[str, Any]] = []
    for row in ROWS:
        case = cases.get(row.case)
        cells = case and row_cells(row, case)
        if not cells:
            continue
        rows.append((row, cells, case["run"]))
        if not any(case["run"] is r for r in runs):
            runs.append(case["run"])
    if not runs:
        raise ValueError("the results hold none of the table's cases")
    lines = ["| case | nettools | peers (nettools / peer) |", "|---|---|---|"]
    for row, (ours, others), run in rows:
        mark = f" [{next(i for i, r in enumerate(runs, 1) if r is run)}]" if len(runs) > 1 else ""
        lines.append(f"| {row.label}{mark} | {ours} | {others} |")
    provenance = [f"{i}. {_provenance(run)}" if len(runs) > 1 else f"- {_provenance(run)}"
                  for i, run in enumerate(runs, 1)]  # fmt: skip
    return "\n".join(["Measured:", "", *provenance, "", *lines])


def _provenance(run: dict[str, Any]) -> str:
    machine = run["machine"]
    argv = list(run["argv"])
    if "--json" in argv:  # where the run kept its results says nothing about them
        at = argv.index("--json")
        del argv[at : at + 2]
    load = " ".join(f"{x:.1f}" for x in machine.get("loadavg") or []) or "n/a"
    pinned = machine.get("pinned_core")
    where = f"server pinned to core {pinned}" if pinned is not None else "not pinned"
    command = " ".join(["python -m bench", *argv])
    return (f"{run['started'][:10]}, `{command}`: {machine['cpu_model']}, {machine['cores']} "
            f"cores, {machine['python']}, {where}, load {load}; medians of {run['repeat']} runs.")


def replace_table(readme: str, table: str) -> str:
    """``readme`` with ``table`` between the markers."""
    start, end = readme.find(START), readme.find(END)
    if start < 0 or end < start:
        raise ValueError(f"the README has no {START} ... {END} markers")
    return readme[: start + len(START)] + "\n" + table + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.readme", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", nargs="*", type=Path, default=[DEFAULT_RESULTS],
                        help="results written by `python -m bench --json` (default: the last run)")
    parser.add_argument("--readme", type=Path, default=DEFAULT_README)
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if the README's table differs instead of writing it")
    args = parser.parse_args(argv)
    try:
        runs = [json.loads(path.read_text()) for path in args.results]
        readme = args.readme.read_text()
        updated = replace_table(readme, render(merge(runs)))
    except (OSError, ValueError, KeyError) as exc:
        print(f"bench.readme: {exc}", file=sys.stderr)
        return 2
    if args.check:
        return 0 if updated == readme else 1
    args.readme.write_text(updated)
    return 0


if __name__ == "__main__":
    sys.exit(main())
