"""How an HTTP connection reads the first bytes of its next request while idle.

Between requests a read may find the next request there already (a fast
client) or nothing yet (the client still reading the last response), and each
guess costs when wrong: reading into nothing raises EAGAIN, an exception dearer
than the read and the wait together; waiting first for what is there already
costs a trip through the hub.  ``IdleReader`` keeps the connection's count of
those guesses and chooses, once per connection, how its socket is read:

* a plain green socket by the C call, waited on only when that says EAGAIN
  (``_plain_idle_recv``), the wait given the timeout itself;
* any other green socket (TLS) by its own ``recv_into``, waited on first once
  reads have had to wait (``_idle_recv``);
* a standard socket by its ``recv_into``, within its own timeout.

``nettools.web.http.HttpConnection`` builds on it.
"""

from __future__ import annotations

import _socket
import time
from collections.abc import Callable
from typing import Any

from ..green.socket import nothing_new, time_left, timed_out
from ..green.socket import socket as green_socket
from ..kernel.hub import get_hub

__all__ = ["IdleReader"]

_c_recv_into = _socket.socket.recv_into  # the C call: never waits on the hub
_monotonic = time.monotonic


class IdleReader:
    """The socket, the shared receive buffer and the idle-read policy of one
    connection.  ``wait_for_request(timeout)`` receives the first bytes of the
    next request into ``view`` within ``timeout`` and returns their count; the
    connection counts as idle (for a graceful stop) only while it waits.
    """

    __slots__ = (
        "sock", "view", "timeout", "plain", "_set_idle", "_green", "_fd",
        "_drained", "_hub", "_misses", "_idle_reads", "_probe_mask",
    )  # fmt: skip

    def __init__(
        self, sock: Any, view: memoryview, set_idle: Callable[[Any, bool], None] | None
    ) -> None:
        self.sock = sock
        self.view = view  # the server's shared receive buffer
        self.timeout: float | None = -1.0  # what the socket's timeout was set to last
        self._set_idle = set_idle
        #: A green socket: it can wait before a read that would find nothing.
        self._green = hasattr(sock, "wait_if_drained")
        #: A plain green socket: idle reads, and sends that may well go at once,
        #: make the C call themselves and wait on the hub only when it says EAGAIN.
        self.plain = type(sock).recv_into is green_socket.recv_into
        self._fd = sock.fileno() if self.plain else -1
        self._drained = False  # the last read emptied the socket (a short read)
        self._hub = get_hub()
        self._misses = 0  # idle reads at once in a row that had to wait
        self._idle_reads = 0
        self._probe_mask = 3  # idle reads between reads at once, less one (a power of 2)

    def settimeout(self, timeout: float | None) -> None:
        """Set the socket's timeout, unless it is that already."""
        if timeout != self.timeout:
            self.sock.settimeout(timeout)
            self.timeout = timeout

    def wait_for_request(self, timeout: float | None) -> int:
        """The idle read of this connection's kind of socket: ``_plain_idle_recv``
        when ``plain``, else ``_idle_recv``.  (``HttpConnection.next_request``,
        run per request, makes the same choice inline: a frame less.)"""
        if self.plain:
            return self._plain_idle_recv(timeout)
        return self._idle_recv(timeout)

    def _idle_recv(self, timeout: float | None) -> int:
        """The idle read of a socket other than a plain green one (TLS, or a
        standard socket): its own ``recv_into`` within its timeout set to
        ``timeout``.  A green one is waited on first (when its last read
        emptied it) once two reads at once in a row had to wait, and still
        read at once every fourth time."""
        if timeout != self.timeout:
            self.settimeout(timeout)
        sock = self.sock
        set_idle = self._set_idle
        if set_idle is not None:
            set_idle(sock, True)
        try:
            if not self._green:
                return sock.recv_into(self.view)
            self._idle_reads += 1
            if self._misses >= 2 and self._idle_reads & 3:
                sock.wait_if_drained()
                return sock.recv_into(self.view)
            hub = self._hub
            switches = hub.switches
            n = sock.recv_into(self.view)
            self._misses = self._misses + 1 if hub.switches != switches else 0
            return n
        finally:
            if set_idle is not None:
                set_idle(sock, False)

    def _plain_idle_recv(self, timeout: float | None) -> int:
        """The idle read of a plain green socket.

        The socket is read at once until two such reads in a row had to wait;
        then, when the last read emptied it and the hub has seen nothing arrive
        since, it is waited on first, and still read at once every fourth time
        to notice when requests come sooner again -- every eighth, then every
        sixteenth while those reads keep finding nothing (a client that sends
        its next request only once it has the response never comes sooner; a
        read into nothing costs about half a trip through the hub, so checking
        more rarely would save little more and notice a faster client later).

        The socket's own timeout is left alone (it stays the one of reads and
        sends inside a request): the wait is given ``timeout`` itself.
        """
        sock = self.sock
        view = self.view
        self._idle_reads += 1
        probe = self._misses < 2 or not self._drained or not self._idle_reads & self._probe_mask
        if probe or not nothing_new(self._hub.fds.get(self._fd)):
            try:
                n = _c_recv_into(sock, view)
            except BlockingIOError:
                n = -1
            if n >= 0:
                if probe:
                    self._misses = 0
                    self._probe_mask = 3
                self._drained = n < len(view)
                return n
            if probe:
                self._misses += 1
                if self._misses > 2 and self._probe_mask < 15:
                    self._probe_mask = self._probe_mask * 2 + 1
        # Wait until the socket may be readable, and read; again if woken for nothing.
        deadline = None if timeout is None else _monotonic() + timeout
        set_idle = self._set_idle
        if set_idle is not None:
            set_idle(sock, True)
        try:
            while True:
                self._hub.wait_read(self._fd, timeout, timed_out)
                try:
                    n = _c_recv_into(sock, view)
                    break
                except BlockingIOError:
                    timeout = time_left(deadline)
        finally:
            if set_idle is not None:
                set_idle(sock, False)
        self._drained = n < len(view)
        return n
