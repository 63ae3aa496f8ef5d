"""What every nettools TLS server holds to, whatever context it is given.

``net.Server`` (so serve, wschat, the zmq websocket bridge, and anything on the
WSGI server), ``net.accept_tls`` (the forwarder) and ``net.server_context`` (the
CLI's ``--tls-cert``) all go through here, so a TLS server is safe by
construction:

* **TLS 1.2 or later, no renegotiation** (``harden_server_context``): a
  context that allows less -- made by hand, or loaded with a legacy policy --
  is raised to TLS 1.2, and renegotiation is switched off (TLS 1.3 has none;
  a client-initiated one in TLS 1.2 costs the server a full handshake for a
  few bytes of the client's).
* **A handshake timeout**: a client that opens TCP and never completes TLS
  holds nothing past it (``Server(handshake_timeout=...)``).
* **A bound on handshakes in progress** (``HandshakeGate``): a handshake
  waits for the client, and the client may never come.  Up to ``limit``
  run at once; a server with that many waits before accepting more, except
  that a handshake already running for ``stalled_after`` seconds is cut to
  make room, oldest first.  So a thousand half-open connections cost a
  thousand cheap waits, while a real client's handshake -- a few
  milliseconds -- gets through at once; a flood beyond the limit is worked
  through at ``limit`` connections every ``stalled_after`` seconds.  In
  ``Server`` the handshake runs before the connection takes a place in the
  handler pool, so half-open connections never crowd out served ones.
"""

from __future__ import annotations

import _socket
import ssl as _ssl
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .kernel.sync import Event
from .kernel.timeout import Timeout

__all__ = ["MINIMUM_VERSION", "harden_server_context", "HandshakeGate"]

#: The oldest protocol a nettools TLS server speaks.
MINIMUM_VERSION = _ssl.TLSVersion.TLSv1_2
_NO_RENEGOTIATION = getattr(_ssl, "OP_NO_RENEGOTIATION", 0)


def harden_server_context(ctx: Any) -> Any:
    """``ctx``, changed in place: TLS 1.2 at least, renegotiation off.  Idempotent."""
    # MINIMUM_SUPPORTED (-2) sorts below every real version.
    if ctx.minimum_version < MINIMUM_VERSION:
        ctx.minimum_version = MINIMUM_VERSION
    if _NO_RENEGOTIATION and not ctx.options & _NO_RENEGOTIATION:
        ctx.options |= _NO_RENEGOTIATION
    return ctx


class HandshakeGate:
    """Bounds the TLS handshakes in progress on a server (see the module docstring).

    Whoever is about to start a handshake calls ``admit()``, which returns once
    there is room; the handshake is then counted from ``add(fd)`` to
    ``discard(fd)`` (or within ``tracking(fd)``, which does all three).  A
    handshake is known by its connection's fd, which stays open until it is
    discarded: the socket object holding it changes as TLS wraps it.
    """

    def __init__(self, limit: int = 256, stalled_after: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self.stalled_after = stalled_after
        #: Handshakes in progress: connection fd -> when it started (oldest first).
        self.running: OrderedDict[int, float] = OrderedDict()
        #: Handshakes cut to make room.
        self.cut = 0
        self._room = Event()

    def __len__(self) -> int:
        return len(self.running)

    def add(self, fd: int) -> None:
        """Count the handshake on ``fd`` as in progress from now."""
        self.running[fd] = time.monotonic()

    def discard(self, fd: int) -> None:
        """The handshake on ``fd`` is over (done, failed or cut)."""
        if self.running.pop(fd, None) is not None and not self._room.ready():
            self._room.send(None)

    def admit(self) -> None:
        """Return once a handshake may start: at once while fewer than ``limit``
        run, else after cutting the oldest one if it has run ``stalled_after``
        seconds, else when one ends or the oldest stalls, whichever comes first."""
        while len(self.running) >= self.limit:
            fd, started = next(iter(self.running.items()))
            wait = started + self.stalled_after - time.monotonic()
            if wait <= 0:
                self._cut(fd)
                continue
            if self._room.ready():
                self._room.reset()
            with Timeout(wait, False):
                self._room.wait()

    @contextmanager
    def tracking(self, fd: int) -> Iterator[None]:
        """``admit()``, then count the handshake on ``fd`` for the ``with`` block."""
        self.admit()
        self.add(fd)
        try:
            yield
        finally:
            self.discard(fd)

    def _cut(self, fd: int) -> None:
        """End a stalled handshake: shut its connection down, so that the wait
        of the greenthread running it ends (in EOF) and it closes the socket."""
        self.running.pop(fd, None)
        self.cut += 1
        try:
            # A plain C socket on the fd, only to shut it down: it never closes
            # the fd, and the hub's record of the fd stays as it is.
            sock = _socket.socket(fileno=fd)
        except OSError:
            return
        try:
            sock.shutdown(_socket.SHUT_RDWR)
        except OSError:
            pass
        finally:
            sock.detach()
