"""Hub waits shared by the green stdlib modules (select, os, subprocess, io).

These modules wait on file descriptors that nettools does not own: the caller
may close one with a plain ``os.close`` and the number may come back as a new
file.  The hub keeps an fd registered until ``notify_close``, so a stale record
would make a later wait on the new file hang.  Hence two rules here: an fd the
hub did not know before a wait is forgotten again right after it (when nobody
else waits on it), and a record the hub already had is checked first
(``forget_stale``): it may be left from a file closed behind the hub's back.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from greenlet import getcurrent

from ..kernel.fdwait import READ, WRITE, ConcurrentWaitError
from ..kernel.greenthread import sleep
from ..kernel.hub import Hub, current_hub, get_hub
from ..kernel.poller import POLL_IN, POLL_OUT

__all__ = [
    "current_hub",
    "in_hub",
    "forget_idle",
    "wait_fd",
    "wait_ready",
    "wait_any",
    "ChildWaiter",
    "forget_idle",
    "READ",
    "WRITE",
]

#: Longest single park while another greenthread holds an fd's waiter slot;
#: we then fall back to re-checking the fds this often.
BUSY_POLL = 0.01


class _TimedOut(Exception):
    pass


def in_hub() -> bool:
    """True when running inside the hub's own greenlet, where waiting is impossible."""
    hub = current_hub()
    return hub is not None and getcurrent() is hub.greenlet


def forget_idle(hub: Hub, fd: int) -> None:
    """Drop the hub's record of ``fd`` unless someone waits on it (the rule above,
    for fds a wait made known to the hub)."""
    st = hub.fds.get(fd)
    if st is not None and st.reader is None and st.writer is None:
        hub.notify_close(fd)


def wait_fd(fd: int, direction: int, timeout: float | None = None) -> bool:
    """Park until ``fd`` may be ready after the caller got EAGAIN; False on timeout."""
    hub = get_hub()
    hub.forget_stale(fd)
    known = fd in hub.fds
    wait = hub.wait_read if direction == READ else hub.wait_write
    try:
        wait(fd, timeout, _TimedOut)
    except _TimedOut:
        return False
    finally:
        if not known:
            forget_idle(hub, fd)
    return True


def wait_ready(fd: int, direction: int) -> None:
    """Park until ``fd`` is ready now (level-checked with a zero-timeout poll).

    For fds that cannot be tried first because they are in blocking mode.
    poll() works for every kind of fd: regular files are always ready, and an
    invalid fd reports POLLNVAL, "ready" for the real call to fail.  Inside the
    hub's greenlet, where nothing can wait, it returns at once.
    """
    if in_hub():
        return
    hub = get_hub()
    mask = POLL_IN if direction == READ else POLL_OUT
    while not hub.probe(fd, mask):
        wait_fd(fd, direction)


class _Wakeup:
    """One token for many fds: the first event (or the timer) wakes the waiter once."""

    __slots__ = ("g", "fired")

    def __init__(self, g: Any) -> None:
        self.g = g
        self.fired = False

    def switch(self, *args: Any) -> None:
        if not self.fired:
            self.fired = True
            self.g.switch()

    def throw(self, *args: Any) -> None:
        # An fd was closed under us: wake up; the caller's re-check reports it.
        self.switch()


def wait_any(reads: Iterable[int], writes: Iterable[int], timeout: float | None) -> None:
    """Park until one of the fds may be ready, or ``timeout`` seconds pass.

    Level-exact callers (select, poll) re-check with a real zero-timeout call
    afterwards: this may return early or spuriously.
    """
    hub = get_hub()
    token = _Wakeup(getcurrent())
    fds = hub.fds
    watched: list[tuple[int, int]] = []
    new: list[int] = []
    busy = False
    try:
        for direction, group in ((READ, reads), (WRITE, writes)):
            for fd in group:
                hub.forget_stale(fd)
                if fd not in fds:
                    new.append(fd)
                try:
                    hub.watch(fd, direction, token)
                except (ConcurrentWaitError, OSError):
                    # Someone else waits on it (or epoll refuses it): poll instead.
                    busy = True
                    continue
                watched.append((fd, direction))
        if busy:
            timeout = BUSY_POLL if timeout is None else min(timeout, BUSY_POLL)
        timer = None if timeout is None else hub.schedule(max(timeout, 0.0), token.switch)
        try:
            hub.switch()
        finally:
            token.fired = True
            if timer is not None:
                timer.cancel()
    finally:
        for fd, direction in watched:
            hub.unwatch(fd, direction, token)
        for fd in new:
            forget_idle(hub, fd)


class ChildWaiter:
    """Waits for child ``pid`` to change state: on a pidfd when Linux offers one,
    else by sleeping with growing intervals between the caller's WNOHANG polls."""

    def __init__(self, pid: int | None) -> None:
        self.pid = pid
        self.pidfd = -1
        self.delay = 0.001
        if pid is not None and pid > 0 and hasattr(os, "pidfd_open"):
            try:
                self.pidfd = os.pidfd_open(pid)
            except OSError:
                self.pidfd = -1  # gone already, or no pidfd support: poll

    def wait(self, timeout: float | None) -> None:
        """Park until the child may have exited, at most ``timeout`` seconds."""
        if self.pidfd >= 0:
            wait_any((self.pidfd,), (), timeout)
            return
        delay = self.delay
        self.delay = min(delay * 2, 0.05)
        sleep(delay if timeout is None else max(0.0, min(delay, timeout)))

    def close(self) -> None:
        if self.pidfd >= 0:
            fd, self.pidfd = self.pidfd, -1
            hub = current_hub()
            if hub is not None:
                hub.notify_close(fd)
            os.close(fd)

    def __enter__(self) -> ChildWaiter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
