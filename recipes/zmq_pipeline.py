"""A ZeroMQ pipeline: a ventilator hands out tasks, workers do them, a sink collects results.

    ventilator (PUSH) --tasks--> workers (PULL ... PUSH) --results--> sink (PULL)

PUSH deals tasks round-robin to the workers connected to it, and PULL fair-queues results
from all of them, so adding workers spreads the work.  Each worker runs ``--concurrency``
greenthreads on one pair of green ZeroMQ sockets: a greenthread waiting for a task, or
"working" (a green sleep of the task's milliseconds), never blocks the others.

The ventilator starts only once ``--workers`` workers have connected (it watches its socket's
monitor for finished handshakes), so early workers do not take all the tasks.  The sink
prints one JSON line when it has every result and exits 0 if each came exactly once and
right, 1 if not (or after ``--timeout``).  Bound roles print a ``listening`` JSON line first.

All in one process, each role a greenthread with its own sockets over TCP on 127.0.0.1
(``--port`` for the ventilator, the next port for the sink; 0 picks free ones):

    python recipes/zmq_pipeline.py --tasks 1000 --workers 4 --port 0

As processes, on one machine or several:

    python recipes/zmq_pipeline.py sink --bind tcp://127.0.0.1:5558 --tasks 1000
    python recipes/zmq_pipeline.py worker --tasks-from tcp://127.0.0.1:5557 \\
        --results-to tcp://127.0.0.1:5558        # as many as you like
    python recipes/zmq_pipeline.py ventilator --bind tcp://127.0.0.1:5557 --tasks 1000 \\
        --workers 2
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time

import nettools
from nettools import zmq

#: Up to this many milliseconds of pretend work per task (task i takes i % WORK_MS).
WORK_MS = 5


def bind(ctx: zmq.Context, kind: int, endpoint: str, service: str | None) -> zmq.Socket:
    """A socket bound to ``endpoint`` (``tcp://HOST:0`` takes a free port); with a
    ``service`` name, print the ready line with the real endpoint."""
    sock = ctx.socket(kind)
    sock.bind(endpoint[:-2] + ":*" if endpoint.endswith(":0") else endpoint)
    if service:
        address = endpoint_of(sock)
        print(
            json.dumps({"event": "listening", "service": service, "address": address}), flush=True
        )
    return sock


def endpoint_of(sock: zmq.Socket) -> str:
    """The endpoint ``sock`` really bound (a free port resolved)."""
    return sock.getsockopt(zmq.LAST_ENDPOINT).decode()


def wait_for_workers(sock: zmq.Socket, count: int, timeout: float) -> None:
    """Return once ``count`` peers have finished their handshake with ``sock``."""
    from zmq.utils.monitor import recv_monitor_message

    monitor = sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
    try:
        with nettools.Timeout(timeout, TimeoutError(f"fewer than {count} workers connected")):
            for _ in range(count):
                recv_monitor_message(monitor)
    finally:
        sock.disable_monitor()
        monitor.close(0)


def ventilator(push: zmq.Socket, tasks: int, workers: int, timeout: float) -> None:
    """Wait for the workers to connect to ``push``, then send every task."""
    wait_for_workers(push, workers, timeout)
    for i in range(tasks):
        push.send_json({"id": i, "work_ms": i % WORK_MS})


def worker(ctx: zmq.Context, tasks_from: str, results_to: str, concurrency: int) -> None:
    """Do tasks for ever with ``concurrency`` greenthreads sharing one pair of sockets."""
    pull = ctx.socket(zmq.PULL)
    pull.connect(tasks_from)
    push = ctx.socket(zmq.PUSH)
    push.connect(results_to)
    name = f"{os.getpid()}-{id(pull):x}"

    def work() -> None:
        while True:
            task = pull.recv_json()
            nettools.sleep(task["work_ms"] / 1000)
            push.send_json({"id": task["id"], "result": task["id"] ** 2, "worker": name})

    pool = [nettools.spawn(work) for _ in range(concurrency)]
    try:
        for gt in pool:
            gt.wait()
    finally:
        for gt in pool:
            gt.kill()
        pull.close(0)
        push.close(0)


def sink(pull: zmq.Socket, tasks: int, timeout: float) -> dict:
    """Collect ``tasks`` results; return the summary (``ok``: each id once and right)."""
    seen: set[int] = set()
    per_worker: dict[str, int] = {}
    wrong = duplicates = 0
    start = None
    with nettools.Timeout(timeout, False):
        while len(seen) < tasks:
            result = pull.recv_json()
            start = start or time.monotonic()
            if result["id"] in seen:
                duplicates += 1
            seen.add(result["id"])
            wrong += result["result"] != result["id"] ** 2
            per_worker[result["worker"]] = per_worker.get(result["worker"], 0) + 1
    return {
        "event": "done",
        "ok": len(seen) == tasks and not wrong and not duplicates,
        "results": len(seen),
        "tasks": tasks,
        "wrong": wrong,
        "duplicates": duplicates,
        "workers": per_worker,
        "seconds": round(time.monotonic() - start, 3) if start else 0.0,
    }


def run_all(
    ctx: zmq.Context,
    host: str,
    port: int,
    tasks: int,
    workers: int,
    concurrency: int,
    timeout: float,
) -> dict:
    """Every role as greenthreads of this process, talking over TCP."""
    push = bind(ctx, zmq.PUSH, f"tcp://{host}:{port}", None)
    pull = bind(ctx, zmq.PULL, f"tcp://{host}:{port + 1 if port else 0}", None)
    crew = [
        nettools.spawn(worker, ctx, endpoint_of(push), endpoint_of(pull), concurrency)
        for _ in range(workers)
    ]
    try:
        ventilator(push, tasks, workers, timeout)
        return sink(pull, tasks, timeout)
    finally:
        for gt in crew:
            gt.kill()


def positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "role",
        nargs="?",
        default="all",
        choices=["all", "ventilator", "worker", "sink"],
        help="which part to run (default: all, in this process)",
    )
    parser.add_argument("--tasks", type=positive, default=1000, help="tasks to hand out")
    parser.add_argument(
        "--workers",
        type=positive,
        default=4,
        help="workers to start (all) or to wait for (ventilator)",
    )
    parser.add_argument("--concurrency", type=positive, default=8, help="greenthreads per worker")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (all)")
    parser.add_argument(
        "--port",
        type=int,
        default=5557,
        help="ventilator port, sink on the next one; 0 for free ports (all)",
    )
    parser.add_argument("--bind", help="endpoint to bind (ventilator, sink)")
    parser.add_argument("--tasks-from", help="the ventilator's endpoint (worker)")
    parser.add_argument("--results-to", help="the sink's endpoint (worker)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        help="seconds to wait for workers or results (default: 60)",
    )
    args = parser.parse_args(argv)
    need = {"ventilator": ["bind"], "sink": ["bind"], "worker": ["tasks_from", "results_to"]}
    for option in need.get(args.role, []):
        if not getattr(args, option):
            parser.error(f"{args.role} needs --{option.replace('_', '-')}")

    # SIGTERM/SIGINT end the process quietly; the hub wakes for them at once.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    nettools.get_hub().wake_on_signals()
    ctx = zmq.Context()
    try:
        if args.role == "ventilator":
            push = bind(ctx, zmq.PUSH, args.bind, "zmq-ventilator")
            ventilator(push, args.tasks, args.workers, args.timeout)
            push.close(linger=-1)  # returns once the queued tasks have gone out
            return 0
        if args.role == "worker":
            worker(ctx, args.tasks_from, args.results_to, args.concurrency)
            return 0
        if args.role == "sink":
            summary = sink(bind(ctx, zmq.PULL, args.bind, "zmq-sink"), args.tasks, args.timeout)
        else:
            summary = run_all(
                ctx, args.host, args.port, args.tasks, args.workers, args.concurrency, args.timeout
            )
        print(json.dumps(summary), flush=True)
        return 0 if summary["ok"] else 1
    except zmq.ZMQError as exc:
        print(f"zmq_pipeline: {exc}", file=sys.stderr)
        return 1
    except (TimeoutError, KeyboardInterrupt) as exc:
        print(f"zmq_pipeline: {exc or 'interrupted'}", file=sys.stderr)
        return 1
    finally:
        ctx.destroy(linger=0)


if __name__ == "__main__":
    sys.exit(main())
