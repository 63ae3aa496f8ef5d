"""Plain (blocking) pyzmq peers for the tests of the zmq proxy and bridges.

Every receive is bounded by a poll.  ZeroMQ's subscriptions reach a publisher
some time after a subscriber connects, so a test that needs one publishes
probes until the first arrives (``first_delivery``, bounded in count), then
checks the messages that matter.
"""

from __future__ import annotations

from collections.abc import Callable

import zmq

TCP0 = "tcp://127.0.0.1:0"
IO_MS = 10_000
PROBES = 500


def peer(ctx: zmq.Context, kind: int, endpoint: str, **options) -> zmq.Socket:
    """A ``kind`` socket connected to ``endpoint``, with linger 0 and ``options`` set."""
    sock = ctx.socket(kind)
    sock.linger = 0
    for name, value in options.items():
        setattr(sock, name, value)
    sock.connect(endpoint)
    return sock


def recv(sock: zmq.Socket, timeout_ms: int = IO_MS) -> list[bytes]:
    """The next message (its frames); fails after ``timeout_ms``."""
    assert sock.poll(timeout_ms, zmq.POLLIN), "no message within the timeout"
    return sock.recv_multipart()


def nothing_within(sock: zmq.Socket, ms: int = 300) -> bool:
    return sock.poll(ms, zmq.POLLIN) == 0


def control(ctx: zmq.Context, endpoint: str, command: str) -> str:
    """Send ``command`` to a REP control socket; its answer."""
    req = peer(ctx, zmq.REQ, endpoint)
    try:
        req.send_string(command)
        return recv(req)[0].decode()
    finally:
        req.close()


def first_delivery(send: Callable[[], object], sock: zmq.Socket) -> list[bytes]:
    """Call ``send()`` until ``sock`` receives something; that message."""
    for _ in range(PROBES):
        send()
        if sock.poll(20, zmq.POLLIN):
            return sock.recv_multipart()
    raise AssertionError(f"nothing arrived after {PROBES} probes")


def drain(sock: zmq.Socket, ms: int = 200) -> None:
    """Receive until ``sock`` has been quiet for ``ms``."""
    while sock.poll(ms, zmq.POLLIN):
        sock.recv_multipart()
