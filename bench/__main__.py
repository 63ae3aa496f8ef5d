"""python -m bench: measure every case on every peer in fresh processes; report medians and ratios.

Tables go to stdout, progress and failures to stderr, everything raw to a JSON file.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench import harness, report
from bench.cases import Case, load_cases
from bench.peers import PEERS

DEFAULT_JSON = harness.REPO_ROOT / "bench" / "results" / "latest.json"


def parse_args(argv: list[str] | None, cases: dict[str, Case]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--repeat", type=int, default=5, metavar="N",
                        help="fresh-process runs per case and peer; the median is reported "
                             "(default: 5)")
    parser.add_argument("--only", nargs="+", action="extend", metavar="SUBSTR",
                        help="run only cases whose family.name contains one of SUBSTR")
    parser.add_argument("--peers", metavar="A,B", help=f"comma-separated subset of "
                        f"{','.join(PEERS)} (default: all)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, metavar="PATH",
                        help="where to write raw runs, medians and ratios "
                             "(default: bench/results/latest.json)")
    parser.add_argument("--n", type=int, metavar="N",
                        help="override every case's n, for quick smoke runs")
    parser.add_argument("--timeout", type=float, default=300, metavar="SECONDS",
                        help="give up on a single run after this long (default: 300)")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    args = parser.parse_args(argv)

    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.n is not None and args.n < 1:
        parser.error("--n must be at least 1")
    args.peers = args.peers.split(",") if args.peers else list(PEERS)
    unknown = [p for p in args.peers if p not in PEERS]
    if unknown:
        parser.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    args.cases = [c for c in cases.values()
                  if not args.only or any(s in c.qualname for s in args.only)]
    if not args.cases:
        parser.error(f"--only {' '.join(args.only)} matches no case; see --list")
    return args


def list_cases(cases: list[Case]) -> None:
    for case in cases:
        print(f"{case.qualname:<28} n={case.n:<10,} {case.unit}/s   "
              f"peers: {', '.join(case.peers)}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def probe(peers: list[str], timeout: float) -> tuple[dict[str, str], dict[str, str]]:
    """Versions of the installed peers, and the reason each missing one is missing."""
    versions: dict[str, str] = {}
    missing: dict[str, str] = {}
    for peer in peers:
        outcome = harness.probe_peer(peer, timeout)
        if outcome.status == "ok":
            versions[peer] = outcome.record["version"]
        else:
            # A probe that crashes rather than fails to import is treated the same: no rows.
            missing[peer] = outcome.error
    return versions, missing


def run_case(case: Case, peers: list[str], versions: dict[str, str],
             args: argparse.Namespace) -> dict[str, Any]:
    """All runs of one case; returns its JSON-ready result."""
    n = args.n or case.n
    results: dict[str, dict[str, Any]] = {}
    for peer in (p for p in peers if p in case.peers):
        status = "pending" if peer in versions else "unavailable"
        results[peer] = {"status": status, "attempts": 0, "runs": [], "errors": []}

    # Repeats go round-robin over the peers rather than peer by peer, so that slow drift
    # (thermal throttling, a noisy neighbour) spreads over all peers instead of hitting one.
    repeat = min(args.repeat, case.runs or args.repeat)
    timeout = max(args.timeout, case.timeout or 0)
    for attempt in range(1, repeat + 1):
        for peer, result in results.items():
            # A peer whose first run failed is not retried: the failure is nearly always
            # deterministic (a missing feature), and each retry could cost a full timeout.
            if result["status"] in ("unavailable", "failed"):
                continue
            outcome = harness.run_child([case.name, peer, "--n", str(n)], timeout)
            result["attempts"] += 1
            if outcome.status == "ok":
                result["runs"].append(outcome.record)
                result["status"] = "ok"
                log(f"  {case.qualname} {peer} run {attempt}/{repeat}: "
                    f"{outcome.record['ops_per_s']:,.0f} {case.unit}/s")
            else:
                result["errors"].append(outcome.error)
                log(f"  {case.qualname} {peer} run {attempt}/{repeat}: FAILED\n"
                    + _indent(outcome.error, "    | "))
                if not result["runs"]:
                    result["status"] = "failed"

    for result in results.values():
        if result["runs"]:
            result.update(report.summarize(result["runs"]))
    return {"family": case.family, "n": n, "unit": case.unit, "peers": results,
            "ratios": report.ratios(results),
            "metric_ratios": report.metric_ratios(results, case.compare)}


def _indent(text: str, prefix: str) -> str:
    return "\n".join(prefix + line for line in (text or "(no stderr)").splitlines())


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)  # never leave a half-written file for a reader to trip on


def main(argv: list[str] | None = None) -> int:
    all_cases = load_cases()
    args = parse_args(argv, all_cases)
    if args.list:
        list_cases(args.cases)
        return 0

    wanted = [p for p in args.peers if any(p in c.peers for c in args.cases)]
    versions, missing = probe(wanted, args.timeout)
    machine = harness.machine_facts()
    print(report.format_header(machine, versions, list(missing), args.repeat), flush=True)
    for peer, reason in missing.items():
        log(f"{peer} unavailable:\n" + _indent(reason, "    | "))

    data: dict[str, Any] = {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv[1:] if argv is None else argv,
        "repeat": args.repeat,
        "machine": machine,
        "peers": {**{p: {"status": "ok", "version": v} for p, v in versions.items()},
                  **{p: {"status": "unavailable", "error": e} for p, e in missing.items()}},
        "cases": {},
    }
    try:
        for case in args.cases:
            log(f"{case.qualname}:")
            data["cases"][case.qualname] = result = run_case(case, args.peers, versions, args)
            # Written after every case so that an interrupted run still leaves its results.
            write_json(args.json, data)
            print("\n" + report.format_case(case.qualname, result), flush=True)
    except KeyboardInterrupt:
        log(f"interrupted; results of the finished cases are in {args.json}")
        return 130

    print(f"\nraw results: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
