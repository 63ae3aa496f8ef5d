"""Green ``select``: ``select``, ``poll`` and ``epoll`` that park the greenthread.

Each call first gives the hub a turn (``sleep(0)``), even when something is
ready already: a greenthread looping on a selector that is always ready (an
asyncore server whose TLS handler always reports itself writable) would
otherwise starve every other greenthread, and their timeouts would never fire.
Then it makes the real call with a zero timeout, so readiness is exactly the
kernel's (level-triggered, every flag and error as usual).  Only if nothing
is ready and the timeout allows does it wait: all the fds go on the hub under
one token, the first sign of life (or the timeout) wakes it, and the real
zero-timeout call runs again.  ``epoll`` objects wait on their own fd, which
the kernel makes readable when any registered fd has an event.

Inside the hub's own greenlet (a hub created after patching uses these) the
real blocking calls are made.
"""

from __future__ import annotations

import select as _select
import time as _time
from collections.abc import Iterable
from select import *  # noqa: F403 - a drop-in replacement re-exports everything
from typing import Any

from ..kernel.fdwait import fileno_of as _fileno
from ..kernel.greenthread import sleep as _sleep
from ._waits import in_hub, wait_any


def get_fileno(obj: Any) -> int:
    """The fd of ``obj`` (an int, or an object with ``fileno()``), checked as
    ``select.select`` checks it: ``TypeError`` for anything else."""
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        if not isinstance(obj, int):
            raise TypeError(f"Expected int or long, got {type(obj)}")  # eventlet's words
        return obj
    fd = fileno()
    if not isinstance(fd, int):
        raise TypeError(f"Expected int or long, got {type(fd)}")
    return fd


__patched__ = ["select", "poll"] + (["epoll"] if hasattr(_select, "epoll") else [])

error = _select.error
# Bound now: once patched, the module attributes are these functions themselves.
_real_select = _select.select
_real_poll = _select.poll
_real_epoll = getattr(_select, "epoll", None)

_IN = _select.POLLIN | _select.POLLPRI | getattr(_select, "POLLRDNORM", 0)
_IN |= getattr(_select, "POLLRDBAND", 0)
_OUT = _select.POLLOUT | getattr(_select, "POLLWRNORM", 0) | getattr(_select, "POLLWRBAND", 0)
#: With only exceptional conditions to watch (the hub does not wake on urgent
#: data), re-check at least this often.
_XLIST_POLL = 0.05


def _seconds(timeout: Any) -> float | None:
    if timeout is None:
        return None
    if not isinstance(timeout, (int, float)):
        raise TypeError("timeout must be a float or None")
    if timeout < 0:
        raise ValueError("timeout must be non-negative")
    return float(timeout)


def select(rlist: Iterable, wlist: Iterable, xlist: Iterable, timeout: float | None = None):
    """Wait until some of the objects are ready, like ``select.select``; parks the greenthread."""
    timeout = _seconds(timeout)
    if in_hub():
        return _real_select(rlist, wlist, xlist, timeout)
    _sleep(0)  # the hub's turn, ready or not (see the module docstring)
    # The caller's sequences go to the real call as they are: it checks their
    # types, and its result must be what it would be without nettools.
    ready = _real_select(rlist, wlist, xlist, 0)
    if ready[0] or ready[1] or ready[2] or timeout == 0:
        return ready
    if not (rlist or wlist or xlist):
        if timeout is None:
            wait_any((), (), None)  # nothing can ever wake us, as with the real call
        else:
            _sleep(timeout)
        return [], [], []
    reads = {_fileno(o) for o in rlist} | {_fileno(o) for o in xlist}
    writes = {_fileno(o) for o in wlist}
    deadline = None if timeout is None else _time.monotonic() + timeout
    while True:
        remaining = None if deadline is None else max(0.0, deadline - _time.monotonic())
        if xlist:
            remaining = _XLIST_POLL if remaining is None else min(remaining, _XLIST_POLL)
        wait_any(reads, writes, remaining)
        ready = _real_select(rlist, wlist, xlist, 0)
        if ready[0] or ready[1] or ready[2]:
            return ready
        if deadline is not None and _time.monotonic() >= deadline:
            return ready


class _Poll:
    """What ``poll()`` returns: the real poll object, with a ``poll`` that parks."""

    def __new__(cls, *args: Any, **kwargs: Any) -> _Poll:
        # As with the real type, only poll() makes these.
        raise TypeError(f"cannot create '{cls.__module__}.{cls.__name__}' instances")

    @classmethod
    def _create(cls) -> _Poll:
        self = object.__new__(cls)
        self._init()
        return self

    def _init(self) -> None:
        self._poll = _real_poll()
        self._masks: dict[int, int] = {}
        self._polling = False

    def register(self, fd: Any, eventmask: int = _select.POLLIN | _select.POLLPRI | _OUT) -> None:
        self._poll.register(fd, eventmask)
        self._masks[_fileno(fd)] = eventmask

    def modify(self, fd: Any, eventmask: int) -> None:
        self._poll.modify(fd, eventmask)
        self._masks[_fileno(fd)] = eventmask

    def unregister(self, fd: Any) -> None:
        self._poll.unregister(fd)
        del self._masks[_fileno(fd)]

    def poll(self, timeout: float | None = None) -> list[tuple[int, int]]:
        """Events as ``(fd, mask)`` pairs; ``timeout`` in milliseconds (None/negative: forever)."""
        if timeout is not None:
            if not isinstance(timeout, (int, float)):
                raise TypeError("timeout must be an integer or None")
            timeout = None if timeout < 0 else timeout / 1000.0
        if in_hub():
            return self._poll.poll(None if timeout is None else timeout * 1000.0)
        if self._polling:
            raise RuntimeError("concurrent poll() invocation")
        self._polling = True
        try:
            return self._wait(timeout)
        finally:
            self._polling = False

    def _wait(self, timeout: float | None) -> list[tuple[int, int]]:
        deadline = None if timeout is None else _time.monotonic() + timeout
        _sleep(0)  # the hub's turn, ready or not (see the module docstring)
        while True:
            events = self._poll.poll(0)
            if events or (deadline is not None and _time.monotonic() >= deadline):
                return events
            reads, writes = [], []
            for fd, mask in self._masks.items():
                if mask & _OUT:
                    writes.append(fd)
                if mask & _IN or not mask & _OUT:
                    reads.append(fd)  # hang-ups and errors show up as readable
            remaining = None if deadline is None else max(0.0, deadline - _time.monotonic())
            wait_any(reads, writes, remaining)


def poll() -> _Poll:
    """A polling object like ``select.poll()`` whose ``poll`` parks the greenthread."""
    return _Poll._create()


if _real_epoll is not None:

    class epoll:
        """``select.epoll`` whose ``poll`` parks the greenthread (wraps a real epoll)."""

        def __init__(self, sizehint: int = -1, flags: int = 0, *, _ep: Any = None) -> None:
            self._ep = _ep if _ep is not None else _real_epoll(sizehint, flags)

        @classmethod
        def fromfd(cls, fd: int) -> epoll:
            return cls(_ep=_real_epoll.fromfd(fd))

        @property
        def closed(self) -> bool:
            return self._ep.closed

        def close(self) -> None:
            self._ep.close()

        def fileno(self) -> int:
            return self._ep.fileno()

        def register(self, fd: Any, *eventmask: int) -> None:
            self._ep.register(fd, *eventmask)

        def modify(self, fd: Any, eventmask: int) -> None:
            self._ep.modify(fd, eventmask)

        def unregister(self, fd: Any) -> None:
            self._ep.unregister(fd)

        def poll(self, timeout: float | None = None, maxevents: int = -1) -> list:
            """Events as ``(fd, mask)`` pairs; ``timeout`` in seconds (None/negative: forever)."""
            if timeout is not None:
                if not isinstance(timeout, (int, float)):
                    raise TypeError("timeout must be an integer or None")
                if timeout < 0:
                    timeout = None
            ep = self._ep
            if in_hub():
                return ep.poll(-1 if timeout is None else timeout, maxevents)
            _sleep(0)  # the hub's turn, ready or not (see the module docstring)
            events = ep.poll(0, maxevents)
            if events or timeout == 0:
                return events
            deadline = None if timeout is None else _time.monotonic() + timeout
            while True:
                remaining = None if deadline is None else max(0.0, deadline - _time.monotonic())
                wait_any((ep.fileno(),), (), remaining)
                events = ep.poll(0, maxevents)
                if events or (deadline is not None and _time.monotonic() >= deadline):
                    return events

        def __enter__(self) -> epoll:
            if self._ep.closed:
                raise ValueError("I/O operation on closed epoll object")
            return self

        def __exit__(self, *exc: Any) -> None:
            self.close()

        def __repr__(self) -> str:
            return f"<green epoll fd={self._ep.fileno()}>"
