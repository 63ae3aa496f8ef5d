"""Run one measurement of one case on one peer, in this (fresh) process.

    python -m bench.one CASE PEER [--n N]   measure; print one result line
    python -m bench.one --probe PEER        print the peer's version, or exit 3 if unavailable

The result is the last stdout line, prefixed with RESULT_PREFIX, so that anything a library
prints on stdout cannot be mistaken for it. Exit status: 0 measured, 1 the run failed (traceback
on stderr), 2 usage error, 3 the peer is not installed.
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import warnings
from typing import Any

from bench import peers
from bench.cases import Case, load_cases

RESULT_PREFIX = "BENCH-RESULT "
EXIT_UNAVAILABLE = 3

# Eventlet announces its deprecation on import; in a failing run's stderr tail that banner
# would crowd out the actual error.
warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")


def measure(case: Case, peer: str, n: int) -> dict[str, Any]:
    """Warm up, then time ``n`` operations of ``case`` on ``peer``; return the raw record."""
    fn = case.peers[peer]
    # The warm-up pays for imports, hub start-up and first-call costs outside the timing.
    fn(min(n, case.warmup_n))
    # Start every peer from the same heap state; the collector stays on because collecting
    # the garbage a library makes is part of its real cost.
    gc.collect()
    start = time.perf_counter()
    returned = fn(n)
    seconds = time.perf_counter() - start

    if returned is None:
        return {"n": n, "ops_per_s": n / seconds, "seconds": seconds, "metrics": {}}
    metrics = dict(returned)
    ops = metrics.pop("ops_per_s", None)
    if not isinstance(ops, (int, float)) or ops <= 0:
        raise TypeError(f"case function returned {returned!r}: need a positive 'ops_per_s'")
    # A self-timed function excludes its own set-up, so its "seconds" is the one to keep.
    return {"n": n, "ops_per_s": float(ops), "seconds": metrics.pop("seconds", None),
            "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.one", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", nargs="?")
    parser.add_argument("peer", nargs="?")
    parser.add_argument("--n", type=int, help="operations to time (default: the case's n)")
    parser.add_argument("--probe", metavar="PEER", help="only report whether PEER is installed")
    args = parser.parse_args(argv)

    if args.probe:
        if args.probe not in peers.PEERS:
            parser.error(f"unknown peer {args.probe!r}")
        peer, case = args.probe, None
    else:
        if not (args.case and args.peer):
            parser.error("need CASE and PEER (or --probe PEER)")
        cases = load_cases()
        if args.case not in cases:
            parser.error(f"unknown case {args.case!r}; known: {', '.join(cases)}")
        case = cases[args.case]
        if args.peer not in case.peers:
            parser.error(f"case {args.case!r} has no {args.peer!r} version")
        peer = args.peer

    try:
        version = peers.load(peer)
    except peers.PeerUnavailable as exc:
        print(exc, file=sys.stderr)
        return EXIT_UNAVAILABLE
    if case is None:
        print(RESULT_PREFIX + json.dumps({"peer": peer, "version": version}))
        return 0

    n = args.n if args.n is not None else case.n
    if n < 1:
        parser.error("--n must be at least 1")
    record = measure(case, peer, n)
    print(RESULT_PREFIX + json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
