"""ZeroMQ in one process over tcp on 127.0.0.1: green sockets against the other ways to wait.

* ``zmq_push_pull``: one PUSH sender and one PULL receiver move ``n`` 16-byte messages.
* ``zmq_req_rep``: a REQ client makes ``n`` round trips to a REP server.
* ``zmq_queue``: a DEALER client sends ``n`` messages through a ROUTER/DEALER queue to a
  DEALER worker (each message arrives as two frames: the client's identity and the body).

Peers, each with the same workload written out in its own idiom:

* ``nettools``: ``nettools.zmq``; the sender (or server) is a greenthread, the queue is
  ``nettools.zmq.proxy`` in a greenthread;
* ``gevent``: pyzmq's ``zmq.green`` on gevent; its queue is ``zmq.green.device``;
* ``pyzmq``: plain pyzmq, blocking calls in OS threads; its queue is libzmq's own proxy
  (``zmq.proxy_steerable``, so that it can be told to stop) in a thread: the ceiling.

* ``zmq_proxy``: the proxy as a service of its own: ``nettools zmq proxy --type streamer`` in
  its own process on one core against libzmq's ``zmq.proxy`` in a process doing the same (the
  ceiling); a PUSH sender and a PULL receiver, both plain pyzmq, share the other core.

Each run times itself from the first message on: creating sockets and connecting are left
out, and one message through each path first makes sure the connections are up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from bench.cases import Case, Result
from bench.cases._procs import read_line, started

PAYLOAD = b"0123456789abcdef"


def _timed(n: int, seconds: float) -> Result:
    return {"ops_per_s": n / seconds, "seconds": seconds}


def _connect(zmq: Any, ctx: Any, bound_type: int, connected_type: int) -> tuple[Any, Any]:
    bound = ctx.socket(bound_type)
    bound.bind("tcp://127.0.0.1:*")
    connected = ctx.socket(connected_type)
    connected.connect(bound.getsockopt(zmq.LAST_ENDPOINT).decode())
    return bound, connected


def _expect(count: int, n: int) -> None:
    # A correctness check, not a timing one: a receiver that stopped early would look fast.
    if count != n:
        raise RuntimeError(f"received {count} messages, expected {n}")


# --- zmq_push_pull --------------------------------------------------------------------------


def _push_pull(zmq: Any, spawn: Any, join: Any, n: int) -> Result:
    """The shared body: ``spawn(fn)`` starts the sender however the peer runs things."""
    ctx = zmq.Context()
    try:
        pull, push = _connect(zmq, ctx, zmq.PULL, zmq.PUSH)
        push.send(PAYLOAD)
        pull.recv()

        def sender() -> None:
            send = push.send
            for _ in range(n):
                send(PAYLOAD)

        start = time.perf_counter()
        worker = spawn(sender)
        recv = pull.recv
        count = 0
        for _ in range(n):
            recv()
            count += 1
        join(worker)
        seconds = time.perf_counter() - start
    finally:
        ctx.destroy(linger=0)
    _expect(count, n)
    return _timed(n, seconds)


def _nettools_push_pull(n: int) -> Result:
    import nettools
    from nettools import zmq

    return _push_pull(zmq, nettools.spawn, lambda t: t.wait(), n)


def _gevent_push_pull(n: int) -> Result:
    import gevent
    import zmq.green as zmq

    return _push_pull(zmq, gevent.spawn, lambda t: t.get(), n)


def _thread(fn: Any) -> threading.Thread:
    t = threading.Thread(target=fn, daemon=True)
    t.start()
    return t


def _pyzmq_push_pull(n: int) -> Result:
    import zmq

    return _push_pull(zmq, _thread, lambda t: t.join(), n)


# --- zmq_req_rep ----------------------------------------------------------------------------


def _req_rep(zmq: Any, spawn: Any, join: Any, n: int) -> Result:
    ctx = zmq.Context()
    try:
        rep, req = _connect(zmq, ctx, zmq.REP, zmq.REQ)
        req.send(PAYLOAD)
        rep.send(rep.recv())
        req.recv()

        def server() -> None:
            recv, send = rep.recv, rep.send
            for _ in range(n):
                send(recv())

        start = time.perf_counter()
        worker = spawn(server)
        send, recv = req.send, req.recv
        count = 0
        for _ in range(n):
            send(PAYLOAD)
            recv()
            count += 1
        join(worker)
        seconds = time.perf_counter() - start
    finally:
        ctx.destroy(linger=0)
    _expect(count, n)
    return _timed(n, seconds)


def _nettools_req_rep(n: int) -> Result:
    import nettools
    from nettools import zmq

    return _req_rep(zmq, nettools.spawn, lambda t: t.wait(), n)


def _gevent_req_rep(n: int) -> Result:
    import gevent
    import zmq.green as zmq

    return _req_rep(zmq, gevent.spawn, lambda t: t.get(), n)


def _pyzmq_req_rep(n: int) -> Result:
    import zmq

    return _req_rep(zmq, _thread, lambda t: t.join(), n)


# --- zmq_queue ------------------------------------------------------------------------------


def _queue(zmq: Any, spawn: Any, join: Any, start_proxy: Any, n: int) -> Result:
    """``start_proxy(ctx, frontend, backend)`` returns a function that stops the proxy."""
    ctx = zmq.Context()
    try:
        frontend, client = _connect(zmq, ctx, zmq.ROUTER, zmq.DEALER)
        backend, worker = _connect(zmq, ctx, zmq.DEALER, zmq.DEALER)
        stop = start_proxy(ctx, frontend, backend)
        try:
            client.send(PAYLOAD)
            worker.recv_multipart()

            def sender() -> None:
                send = client.send
                for _ in range(n):
                    send(PAYLOAD)

            start = time.perf_counter()
            t = spawn(sender)
            recv = worker.recv_multipart
            count = 0
            for _ in range(n):
                recv()
                count += 1
            join(t)
            seconds = time.perf_counter() - start
        finally:
            stop()
    finally:
        ctx.destroy(linger=0)
    _expect(count, n)
    return _timed(n, seconds)


def _nettools_queue(n: int) -> Result:
    import nettools
    from nettools import zmq

    def start_proxy(ctx: Any, frontend: Any, backend: Any) -> Any:
        return nettools.spawn(zmq.proxy, frontend, backend).kill

    return _queue(zmq, nettools.spawn, lambda t: t.wait(), start_proxy, n)


def _gevent_queue(n: int) -> Result:
    import gevent
    import zmq.green as zmq

    def start_proxy(ctx: Any, frontend: Any, backend: Any) -> Any:
        return gevent.spawn(zmq.device, zmq.QUEUE, frontend, backend).kill

    return _queue(zmq, gevent.spawn, lambda t: t.get(), start_proxy, n)


def _pyzmq_queue(n: int) -> Result:
    import zmq

    def start_proxy(ctx: Any, frontend: Any, backend: Any) -> Any:
        control = ctx.socket(zmq.PAIR)
        control.bind("inproc://control")
        t = _thread(lambda: zmq.proxy_steerable(frontend, backend, None, control))
        steer = ctx.socket(zmq.PAIR)
        steer.connect("inproc://control")

        def stop() -> None:
            steer.send(b"TERMINATE")
            t.join()

        return stop

    return _queue(zmq, _thread, lambda t: t.join(), start_proxy, n)


# --- zmq_proxy ------------------------------------------------------------------------------

PROXY_CORE, LOAD_CORE = 1, 0
PROXY_PAYLOAD = 64
_LIBZMQ_PROXY = """
import json, zmq
ctx = zmq.Context()
front, back = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
for s in (front, back):
    s.sndhwm = s.rcvhwm = 0
front.bind("tcp://127.0.0.1:*")
back.bind("tcp://127.0.0.1:*")
ends = {"frontend": front.LAST_ENDPOINT.decode(), "backend": back.LAST_ENDPOINT.decode()}
print(json.dumps(ends), flush=True)
zmq.proxy(front, back)
"""
_SENDER = """
import sys, zmq
ctx = zmq.Context()
push = ctx.socket(zmq.PUSH)
push.sndhwm = 0
push.connect(sys.argv[1])
msg = b"x" * int(sys.argv[3])
for _ in range(int(sys.argv[2])):
    push.send(msg)
push.send(b"END")
push.close(linger=-1)
ctx.term()
"""


def _through_proxy(cmd: list[str], n: int) -> Result:
    import zmq

    with started(cmd, PROXY_CORE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL) as proxy:
        ready = json.loads(read_line(proxy, proxy.stdout, 30.0, "the proxy's ready line"))
        ctx = zmq.Context()
        pull = ctx.socket(zmq.PULL)
        pull.rcvhwm = 0
        pull.connect(ready["backend"])
        try:
            os.sched_setaffinity(0, {LOAD_CORE})
        except (OSError, AttributeError):
            pass
        cmd = [sys.executable, "-c", _SENDER, ready["frontend"], str(n), str(PROXY_PAYLOAD)]
        with started(cmd, LOAD_CORE):
            first = pull.recv()
            start = time.perf_counter()
            count = 1
            while pull.recv() != b"END":
                count += 1
            seconds = time.perf_counter() - start
        ctx.destroy(0)
    _expect(count, n)
    return _timed(n - 1, seconds) | {"first_bytes": len(first)}


def _nettools_proxy(n: int) -> Result:
    return _through_proxy([
        sys.executable, "-m", "nettools", "-q", "zmq", "proxy", "--type", "streamer",
        "--frontend", "tcp://127.0.0.1:0", "--backend", "tcp://127.0.0.1:0", "--hwm", "0",
    ], n)  # fmt: skip


def _pyzmq_proxy(n: int) -> Result:
    return _through_proxy([sys.executable, "-c", _LIBZMQ_PROXY], n)


CASES: dict[str, Case] = {
    "zmq_push_pull": Case(
        n=200_000,
        unit="messages",
        peers={
            "nettools": _nettools_push_pull,
            "gevent": _gevent_push_pull,
            "pyzmq": _pyzmq_push_pull,
        },
    ),
    "zmq_req_rep": Case(
        n=20_000,
        unit="round trips",
        peers={
            "nettools": _nettools_req_rep,
            "gevent": _gevent_req_rep,
            "pyzmq": _pyzmq_req_rep,
        },
    ),
    "zmq_queue": Case(
        n=200_000,
        unit="messages",
        peers={
            "nettools": _nettools_queue,
            "gevent": _gevent_queue,
            "pyzmq": _pyzmq_queue,
        },
    ),
    "zmq_proxy": Case(
        n=300_000,
        unit="messages",
        peers={"nettools": _nettools_proxy, "pyzmq": _pyzmq_proxy},
    ),
}
