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

``ZmqProxy`` is green zmq's proxy loop (``nettools.green.zmq.proxying.Proxy``:
a greenthread per direction and one for the control socket, so a destination
at its high-water mark holds up only its own direction, and the control socket
always answers) plus what a service needs: it opens its sockets on endpoints,
speaks its own control protocol, keeps its counts in a ``Stats`` that the
service runner reports, and runs in a greenthread that ``stop`` ends at once.
Multipart messages go through whole.

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

import json
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

from ...green import zmq
from ...green.zmq.endpoints import Endpoint, SocketSet
from ...green.zmq.proxying import Proxy, ProxyCounts
from ...kernel.greenthread import GreenThread, kill, spawn
from ...kernel.sync import Event
from ..plumbing.service import Stats
from .metrics import add_proxy_families

__all__ = ["PROXY_TYPES", "ProxyStats", "ZmqProxy"]

log = logging.getLogger("nettools.zmq")

#: Socket types of each proxy: (frontend, backend).
PROXY_TYPES = {
    "queue": (zmq.ROUTER, zmq.DEALER),
    "forwarder": (zmq.XSUB, zmq.XPUB),
    "streamer": (zmq.PULL, zmq.PUSH),
}


@dataclass
class ProxyStats(ProxyCounts, Stats):
    """Counts of a proxy: ``Stats`` plus what went each way (``ProxyCounts``)."""

    def counts(self) -> dict:
        """The counts as plain data (what STATISTICS and the summaries show)."""
        return {
            "frontend_to_backend": asdict(self.frontend_to_backend),
            "backend_to_frontend": asdict(self.backend_to_frontend),
            "captured": self.captured,
            "paused": self.paused,
            "seconds": round(time.monotonic() - self.started, 3),
        }

    def summary(self, service: str) -> dict:
        return {"event": "stopped", "service": service, **self.counts()}


class ZmqProxy(Proxy):
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
        self.stats.metric_sources.append(lambda f: add_proxy_families(f, self.stats))
        self.done = Event()
        self._loop: GreenThread | None = None
        self._sockets = SocketSet(ctx, hwm=hwm, linger=linger)
        self.endpoints = self._sockets.endpoints
        front_type, back_type = PROXY_TYPES[kind]
        try:
            sockets = self._sockets
            super().__init__(
                sockets.open("frontend", front_type, frontend),
                sockets.open("backend", back_type, backend),
                sockets.open("capture", zmq.PUB, capture),
                sockets.open("control", zmq.REP, control, hwm=None),
                counts=self.stats,
            )
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------ control

    def start(self) -> ZmqProxy:
        """Run the proxy in a greenthread of its own; returns self."""
        if self._loop is None:
            self._loop = spawn(self._run)
        return self

    def stop(self, timeout: float | None = None) -> None:
        """End the proxy and close its sockets (each lingers as configured).

        ``timeout`` is accepted for ``Service`` and ignored: the loop holds no
        work of its own that could finish later.
        """
        if self._loop is not None and not self._loop.dead:
            kill(self._loop)
        self.close()

    def wait(self) -> None:
        """Wait until the proxy has ended."""
        self.done.wait()

    def close(self) -> None:
        """Close the sockets (the loop must not be running)."""
        self._sockets.close()
        if not self.done.ready():
            self.done.send(None)

    def command(self, frames: list[bytes]) -> list[bytes]:
        """Answer one request on the control socket (see the module doc)."""
        command = frames[0].decode("ascii", "replace").strip().upper() if frames else ""
        if command == "PAUSE":
            self.pause()
            reply = "OK"
        elif command == "RESUME":
            self.resume()
            reply = "OK"
        elif command == "TERMINATE":
            self.terminate()
            reply = "OK"
        elif command == "STATISTICS":
            reply = json.dumps(self.stats.counts())
        else:
            reply = f"ERROR unknown command {command[:40]!r} (PAUSE, RESUME, TERMINATE, STATISTICS)"
        log.debug("zmq proxy: control %s", command)
        return [reply.encode()]

    # ------------------------------------------------------------ the loop

    def _run(self) -> None:
        try:
            self.run()
        finally:
            self.close()
