"""ZeroMQ proxies on green sockets: queue, forwarder and streamer, with a capture
socket, a control socket and exact message and byte counts.

=========  ========  ========  =====================================
type       frontend  backend   what flows
=========  ========  ========  =====================================
queue      ROUTER    DEALER    requests forward, replies back
forwarder  XSUB      XPUB      messages forward, subscriptions back
streamer   PULL      PUSH      messages forward only
=========  ========  ========  =====================================

Endpoints are written ``bind:URL`` or ``connect:URL``; a bare ``URL`` binds.
A bound ``tcp://HOST:0`` (or ``:*``) takes a free port; ``ZmqProxy.endpoints``
holds the real one.

The loop is one greenthread around a green ``Poller``: it never blocks the OS
thread, so other greenthreads (signal handling, a stats request) keep running,
and a ``kill`` stops it at once.  Receives and sends never wait: a message is
forwarded with ``NOBLOCK``, and one that its destination refuses (a DEALER or
PUSH at its high-water mark) is held while the loop polls that destination for
``POLLOUT`` instead of reading more from the source.  Multipart messages go
through whole.

Between two polls the loop moves messages with pyzmq's C-level ``send`` and
``recv`` rather than the green wrappers, which would also hand consumed
``ZMQ_FD`` edges on to other waiters: the loop is the only user of its
sockets, so nobody else waits on them, and the green ``Poller`` reads
``EVENTS`` itself before it sleeps (see ``nettools.green.zmq``).  Frames are
received as ``zmq.Frame`` objects, whose ``more`` is far cheaper than asking
the socket for ``RCVMORE``, and sent on without a copy.

The control socket is a REP socket.  Each request is one frame holding a
command; each gets one reply frame:

* ``PAUSE`` / ``RESUME``: stop and restart forwarding (messages wait in ZeroMQ's
  queues meanwhile); reply ``OK``.
* ``TERMINATE``: reply ``OK`` and end the proxy.
* ``STATISTICS``: reply a JSON object with the counts so far (see
  ``ProxyStats.counts``).
* anything else: ``ERROR unknown command ...``.
"""

from __future__ import annotations

import errno
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from ...green import zmq
from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from ...kernel.sync import Event
from ..plumbing.service import Stats

__all__ = [
    "PROXY_TYPES", "Endpoint", "EndpointError", "parse_endpoint", "open_socket",
    "Flow", "ProxyStats", "ZmqProxy",
]

log = logging.getLogger("nettools.zmq")

#: Socket types of each proxy: (frontend, backend).
PROXY_TYPES = {
    "queue": (zmq.ROUTER, zmq.DEALER),
    "forwarder": (zmq.XSUB, zmq.XPUB),
    "streamer": (zmq.PULL, zmq.PUSH),
}
#: Transports libzmq may know; anything else is refused before libzmq sees it.
TRANSPORTS = ("tcp", "ipc", "inproc", "pgm", "epgm", "tipc", "vmci", "ws", "wss")
#: Messages moved in one direction before the loop lets others run.
BATCH = 1024
# pyzmq's C-level socket class (below its Python "sugar" and the green layer).
_CSocket = next(c for c in zmq.Socket.__mro__ if c.__module__.startswith("zmq.backend"))
_c_recv, _c_send = _CSocket.recv, _CSocket.send
# Plain ints: IntFlag arithmetic is slow on the hot path.
_NOBLOCK, _SNDMORE = int(zmq.NOBLOCK), int(zmq.SNDMORE)
_Again = zmq.Again
# errnos of bind/connect that mean the endpoint itself is wrong, not the world.
_BAD_ENDPOINT = {errno.EINVAL, errno.EPROTONOSUPPORT, errno.ENODEV, zmq.ENOCOMPATPROTO}


class EndpointError(ValueError):
    """An endpoint that cannot be right (bad syntax, unknown transport or host)."""


@dataclass(frozen=True)
class Endpoint:
    """A ZeroMQ endpoint URL and whether the socket binds it or connects to it."""

    url: str
    bind: bool = True

    def __str__(self) -> str:
        return ("bind:" if self.bind else "connect:") + self.url


def parse_endpoint(text: str) -> Endpoint:
    """``bind:URL``, ``connect:URL`` or ``URL`` (binds) -> ``Endpoint``."""
    bind = True
    url = text.strip()
    head, sep, rest = url.partition(":")
    if sep and head in ("bind", "connect"):
        bind, url = head == "bind", rest
    transport, sep, address = url.partition("://")
    if not sep or not address:
        raise EndpointError(
            f"invalid endpoint {text!r} (use e.g. tcp://127.0.0.1:5555, "
            "connect:tcp://host:5555, ipc:///tmp/sock)"
        )
    if transport not in TRANSPORTS:
        raise EndpointError(
            f"invalid endpoint {text!r}: unknown transport {transport!r} "
            f"(one of {', '.join(TRANSPORTS)})"
        )
    return Endpoint(url, bind)


def open_socket(
    ctx: Any,
    kind: int,
    endpoint: Endpoint,
    *,
    hwm: int | None = None,
    linger: float | None = 1.0,
    options: dict[int, Any] | None = None,
) -> tuple[Any, str]:
    """A green socket of type ``kind`` bound or connected to ``endpoint``,
    and the endpoint it really uses (a port-0 bind resolved).

    ``hwm`` sets both high-water marks; ``linger`` is how long closing waits to
    deliver what is queued (None: until done); ``options`` are more socket
    options, set before binding or connecting.  A wrong endpoint raises
    ``EndpointError``; a failure to bind (address in use, a missing directory)
    raises ``OSError``.
    """
    sock = ctx.socket(kind)
    try:
        sock.linger = -1 if linger is None else int(linger * 1000)
        if hwm is not None:
            sock.sndhwm = hwm
            sock.rcvhwm = hwm
        for option, value in (options or {}).items():
            sock.setsockopt(option, value)
        try:
            if endpoint.bind:
                sock.bind(endpoint.url)
            else:
                sock.connect(endpoint.url)
        except zmq.ZMQError as exc:
            verb = "bind" if endpoint.bind else "connect to"
            reason = zmq.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno in _BAD_ENDPOINT:
                raise EndpointError(f"cannot {verb} {endpoint.url}: {reason}") from None
            raise OSError(exc.errno, f"cannot {verb} {endpoint.url}: {reason}") from None
    except BaseException:
        sock.close(0)
        raise
    real = sock.getsockopt(zmq.LAST_ENDPOINT).decode() if endpoint.bind else endpoint.url
    return sock, real


@dataclass
class Flow:
    """Messages and bytes (over all frames) moved in one direction."""

    messages: int = 0
    bytes: int = 0


@dataclass
class ProxyStats(Stats):
    """Counts of a proxy: ``Stats`` plus what went each way."""

    frontend_to_backend: Flow = field(default_factory=Flow)
    backend_to_frontend: Flow = field(default_factory=Flow)
    captured: int = 0  # messages copied to the capture socket
    paused: bool = False

    def counts(self) -> dict:
        """The counts as plain data (what STATISTICS and the summaries show)."""
        return {
            "frontend_to_backend": vars(self.frontend_to_backend).copy(),
            "backend_to_frontend": vars(self.backend_to_frontend).copy(),
            "captured": self.captured,
            "paused": self.paused,
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def summary(self, service: str) -> dict:
        return {"event": "stopped", "service": service, **self.counts()}


class _Direction:
    """One way through the proxy: from ``src`` to ``dst``."""

    __slots__ = ("src", "dst", "flow", "held")

    def __init__(self, src: Any, dst: Any, flow: Flow) -> None:
        self.src = src
        self.dst = dst
        self.flow = flow
        self.held: list | None = None  # a message dst refused; sent before any other


class ZmqProxy:
    """A queue, forwarder or streamer between two endpoints (see the module doc).

    The sockets are opened at once (so a bad endpoint fails here), on ``ctx``
    (a ``nettools.green.zmq`` context).  ``capture``: a PUB socket that gets a
    copy of every message forwarded, either way.  ``control``: a REP socket
    taking PAUSE, RESUME, TERMINATE and STATISTICS.  ``hwm``, ``linger``: see
    ``open_socket``.  ``endpoints`` maps ``frontend``, ``backend`` (and
    ``capture``, ``control``) to the endpoints really in use.  ``done`` is an
    ``Event`` set when the proxy has ended (TERMINATE or ``stop``).
    """

    def __init__(
        self,
        ctx: Any,
        kind: str,
        frontend: Endpoint,
        backend: Endpoint,
        *,
        capture: Endpoint | None = None,
        control: Endpoint | None = None,
        hwm: int | None = None,
        linger: float | None = 1.0,
        stats: ProxyStats | None = None,
    ) -> None:
        if kind not in PROXY_TYPES:
            raise ValueError(f"unknown proxy type {kind!r} (one of {', '.join(PROXY_TYPES)})")
        self.kind = kind
        self.stats = stats if stats is not None else ProxyStats()
        self.endpoints: dict[str, str] = {}
        self.done = Event()
        self._sockets: list[Any] = []
        self._loop: GreenThread | None = None
        self._terminate = False
        front_type, back_type = PROXY_TYPES[kind]
        try:
            self.frontend = self._open("frontend", ctx, front_type, frontend, hwm, linger)
            self.backend = self._open("backend", ctx, back_type, backend, hwm, linger)
            self.capture = (
                None if capture is None
                else self._open("capture", ctx, zmq.PUB, capture, hwm, linger)
            )
            self.control = (
                None if control is None
                else self._open("control", ctx, zmq.REP, control, None, linger)
            )
        except BaseException:
            self.close()
            raise

    def _open(
        self, name: str, ctx: Any, kind: int, ep: Endpoint, hwm: int | None, linger: float | None
    ) -> Any:
        sock, self.endpoints[name] = open_socket(ctx, kind, ep, hwm=hwm, linger=linger)
        self._sockets.append(sock)
        return sock

    # ------------------------------------------------------------ control

    @property
    def paused(self) -> bool:
        return self.stats.paused

    def start(self) -> ZmqProxy:
        """Run the proxy in a greenthread of its own; returns self."""
        if self._loop is None:
            self._loop = spawn(self._run)
        return self

    def pause(self) -> None:
        """Stop forwarding until ``resume``; messages wait in ZeroMQ's queues."""
        self.stats.paused = True

    def resume(self) -> None:
        self.stats.paused = False

    def stop(self, timeout: float | None = None) -> None:
        """End the proxy and close its sockets (each lingers as configured).

        ``timeout`` is accepted for ``Service`` and ignored: the loop holds no
        work of its own that could finish later.
        """
        self._terminate = True
        if self._loop is not None and not self._loop.dead:
            kill(self._loop)
        self.close()

    def wait(self) -> None:
        """Wait until the proxy has ended."""
        self.done.wait()

    def close(self) -> None:
        """Close the sockets (the loop must not be running)."""
        sockets, self._sockets = self._sockets, []
        for sock in sockets:
            sock.close()
        if not self.done.ready():
            self.done.send(None)

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            self._forward()
        finally:
            self.close()

    def _forward(self) -> None:
        stats = self.stats
        directions = [_Direction(self.frontend, self.backend, stats.frontend_to_backend)]
        if self.kind != "streamer":  # a PUSH backend has nothing to send back
            directions.append(
                _Direction(self.backend, self.frontend, stats.backend_to_frontend)
            )
        poller = zmq.Poller()
        registered: dict[Any, int] = {}

        def want(interest: dict[Any, int]) -> None:
            for sock in set(registered) | set(interest):
                flags = interest.get(sock, 0)
                if registered.get(sock, 0) != flags:
                    if flags:
                        poller.register(sock, flags)
                        registered[sock] = flags
                    else:
                        poller.unregister(sock)
                        del registered[sock]

        control = self.control
        while not self._terminate:
            interest: dict[Any, int] = {}
            if control is not None:
                interest[control] = zmq.POLLIN
            if not stats.paused:
                for d in directions:
                    if d.held is not None:
                        interest[d.dst] = interest.get(d.dst, 0) | zmq.POLLOUT
                    else:
                        interest[d.src] = interest.get(d.src, 0) | zmq.POLLIN
            want(interest)
            events = dict(poller.poll())
            if control is not None and events.get(control, 0) & zmq.POLLIN:
                self._command()
                if self._terminate:
                    return
            if stats.paused:
                continue
            busy = False
            for d in directions:
                busy = self._pump(d) or busy
            if busy:
                sleep(0)  # a source that never runs dry must not keep the hub to itself

    def _pump(self, d: _Direction) -> bool:
        """Move up to BATCH messages from ``d.src`` to ``d.dst`` without waiting;
        True if the source may have more."""
        src, dst, capture = d.src, d.dst, self.capture
        messages = nbytes = captured = 0
        more = False
        try:
            if d.held is not None:
                _send_whole(dst, d.held)
                messages, nbytes = 1, sum(map(len, d.held))
                d.held = None
            for _ in range(BATCH):
                try:
                    frame = _c_recv(src, _NOBLOCK, False)
                except _Again:
                    break
                if frame.more:
                    msg = [frame]
                    while msg[-1].more:  # the rest came with the first
                        msg.append(_c_recv(src, _NOBLOCK, False))
                    size = sum(map(len, msg))
                else:
                    msg = None
                    size = len(frame)
                if capture is not None:
                    try:
                        _send_whole(capture, msg or [frame])
                        captured += 1
                    except _Again:
                        pass
                try:
                    if msg is None:
                        _c_send(dst, frame, _NOBLOCK, False)
                    else:
                        _send_whole(dst, msg)
                except _Again:
                    d.held = msg or [frame]  # dst is full: wait for POLLOUT before reading more
                    break
                messages += 1
                nbytes += size
            else:
                more = True
        except _Again:
            pass  # the held message is still refused
        finally:
            d.flow.messages += messages
            d.flow.bytes += nbytes
            self.stats.captured += captured
        return more

    def _command(self) -> None:
        """Answer one request on the control socket."""
        try:
            frames = self.control.recv_multipart(zmq.NOBLOCK)
        except zmq.Again:
            return
        command = frames[0].decode("ascii", "replace").strip().upper() if frames else ""
        if command == "PAUSE":
            self.pause()
            reply = "OK"
        elif command == "RESUME":
            self.resume()
            reply = "OK"
        elif command == "TERMINATE":
            self._terminate = True
            reply = "OK"
        elif command == "STATISTICS":
            reply = json.dumps(self.stats.counts())
        else:
            reply = f"ERROR unknown command {command[:40]!r} (PAUSE, RESUME, TERMINATE, STATISTICS)"
        log.debug("zmq proxy: control %s", command)
        self.control.send_string(reply, zmq.NOBLOCK)


def _send_whole(sock: Any, msg: list) -> None:
    """Send a multipart message without waiting; ``Again`` if refused.  Only the
    first frame can be refused: libzmq then takes the rest of the message."""
    last = len(msg) - 1
    for i, frame in enumerate(msg):
        _c_send(sock, frame, _NOBLOCK | _SNDMORE if i < last else _NOBLOCK, False)
