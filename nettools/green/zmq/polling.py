"""The green ``Poller`` and ``select``: ``zmq_poll`` made to wait on the hub.

A poll reads EVENTS of each green socket itself (handing any edge it drained on to that
socket's other waiters, rule 2 in ``watch``); while it sleeps it stands in the readers
and/or writers of each green socket it polls, and other file descriptors (plain pyzmq
sockets included) are watched on the hub.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

import zmq
from greenlet import getcurrent

from ...kernel.fdwait import READ, WRITE, ConcurrentWaitError
from ...kernel.hub import get_hub
from .._waits import BUSY_POLL, forget_idle
from .sockets import Socket
from .watch import EVENTS, FD, POLLIN, POLLOUT, Waiter, Watch, c_get

__all__ = ["Poller", "select"]

_monotonic = time.monotonic


class Poller(zmq.Poller):
    """A green ``zmq.Poller``: ``poll`` waits on the hub."""

    def poll(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        """Like ``zmq.Poller.poll``: ``timeout`` in milliseconds, ``None`` or < 0 for ever."""
        if timeout is None or timeout < 0:
            deadline = None
        else:
            deadline = _monotonic() + timeout / 1000.0
        while True:
            events = self._ready()
            if events or timeout == 0:
                return events
            if deadline is not None and deadline <= _monotonic():
                return events
            self._wait(deadline)

    def _ready(self) -> list[tuple[Any, int]]:
        """What is ready now (level), as ``zmq_poll`` with a zero timeout would say."""
        events: list[tuple[Any, int]] = []
        others = []
        for sock, flags in self.sockets:
            if isinstance(sock, Socket):
                ev = c_get(sock, EVENTS)
                w = sock.watch
                if w.readers or w.writers:
                    w.wake(ev)  # we drained its mailbox: hand the edge on (rule 2)
                ev &= flags
                if ev:
                    events.append((sock, ev))
            else:
                others.append((sock, flags))
        if others:
            events.extend(zmq.zmq_poll(others, 0))
        return events

    def _wait(self, deadline: float | None) -> None:
        """Park until something polled may have changed, or ``deadline``."""
        hub = get_hub()
        waiter = Waiter(getcurrent())
        queued: list[tuple[Watch, deque]] = []
        watched: list[tuple[int, int]] = []
        new: list[int] = []
        busy = False
        timer = None
        try:
            for sock, flags in self.sockets:
                if isinstance(sock, Socket):
                    w = sock.watch
                    if flags & POLLIN:
                        w.readers.append(waiter)
                        queued.append((w, w.readers))
                    if flags & POLLOUT:
                        w.writers.append(waiter)
                        queued.append((w, w.writers))
                    w.arm()  # _ready() just drained it: rule 1 holds
                    continue
                if isinstance(sock, zmq.Socket):
                    # A plain pyzmq socket: its fd has an edge on any change.
                    directions = [(c_get(sock, FD), READ)]
                else:
                    fd = sock if isinstance(sock, int) else int(sock.fileno())
                    directions = []
                    if flags & POLLIN:
                        directions.append((fd, READ))
                    if flags & POLLOUT:
                        directions.append((fd, WRITE))
                for fd, direction in directions:
                    if fd not in hub.fds:
                        new.append(fd)
                    try:
                        hub.watch(fd, direction, waiter)
                    except (ConcurrentWaitError, OSError):
                        busy = True  # someone else waits on it: re-check now and then
                        continue
                    watched.append((fd, direction))
            if busy:
                limit = _monotonic() + BUSY_POLL
                deadline = limit if deadline is None else min(deadline, limit)
            if deadline is not None:
                timer = hub.schedule(max(0.0, deadline - _monotonic()), waiter.expire)
            hub.switch()
        finally:
            waiter.fired = True
            if timer is not None:
                timer.cancel()
            for w, waiters in queued:
                try:
                    waiters.remove(waiter)
                except ValueError:
                    pass
                if not (w.readers or w.writers):
                    w.disarm()
            for fd, direction in watched:
                hub.unwatch(fd, direction, waiter)
            for fd in new:
                forget_idle(hub, fd)


def select(
    rlist: list, wlist: list, xlist: list, timeout: float | None = None
) -> tuple[list, list, list]:
    """Like ``zmq.select``: ``timeout`` in seconds, ``None`` for ever."""
    poller = Poller()
    for s in dict.fromkeys(list(rlist) + list(wlist) + list(xlist)):
        flags = 0
        if s in rlist:
            flags |= POLLIN
        if s in wlist:
            flags |= POLLOUT
        if s in xlist:
            flags |= zmq.POLLERR
        poller.register(s, flags)
    ms = None if timeout is None or timeout < 0 else timeout * 1000.0
    ready = dict(poller.poll(ms))
    return (
        [s for s in rlist if ready.get(s, 0) & POLLIN],
        [s for s in wlist if ready.get(s, 0) & POLLOUT],
        [s for s in xlist if ready.get(s, 0) & zmq.POLLERR],
    )
