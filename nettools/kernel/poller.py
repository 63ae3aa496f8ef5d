"""Pollers: the hub's one window on the OS, asking which fds may be ready.

A hub holds one poller, made by ``new_poller``.  Both kinds have the same few
members, so the hub's loop has no branch on which one it holds:

``register(fd)`` / ``unregister(fd)``
    start and stop reporting ``fd`` (the hub calls them from its fd records).
``registered(fd)``
    whether the file open under ``fd`` now is the one registered (False for
    a file closed behind the hub's back, its number maybe reused since).
``poll(timeout)``
    wait up to ``timeout`` seconds (negative: forever) and return
    ``[(fd, events)]``; test ``events`` against the poller's ``IN``, ``OUT``
    and ``HUP`` masks.
``wake_fd``, ``wake()``, ``clear_wake()``
    the wake-up channel: ``wake()`` (from any thread, or a signal handler) ends
    a poll, which then reports ``wake_fd``; the hub calls ``clear_wake()``
    before it looks at what the waker queued.
``add_wakeup_fd(fd)``
    also end a poll when ``fd``, an fd the hub drains itself, gets data.
``close()``
    release the poller's fds.
``renew_after_fork(fds)``
    in a forked child: kernel objects of its own under the same fd numbers
    (the hub's loop holds them), ``fds`` registered anew.

``EpollPoller`` is the one that runs on Linux.  ``PollPoller`` runs where
epoll is missing; ``NETTOOLS_HUB=poll`` forces it, so that it stays tested.
"""

from __future__ import annotations

import os
import select
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

__all__ = [
    "EpollPoller", "PollPoller", "LevelProbe", "new_poller", "replace_fd", "POLL_IN", "POLL_OUT",
]  # fmt: skip

# Bound now: after monkey-patching, select.epoll/select.poll are green wrappers.
_epoll = getattr(select, "epoll", None)
_poll = select.poll
# Read once, at import: hubs made later all use the same kind.
_USE_EPOLL = _epoll is not None and (
    os.environ.get("NETTOOLS_HUB") or os.environ.get("EVENTLET_HUB")
) not in ("poll", "selects")

#: poll(2) masks for "may read" and "may write".  Hang-ups and errors count as
#: ready: the real call then reports them.  (Also the masks for ``Hub.probe``.)
POLL_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
POLL_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR


class LevelProbe:
    """Level-triggered readiness of one fd right now: a zero-timeout poll(2)."""

    def __init__(self) -> None:
        self._poll = _poll()

    def __call__(self, fd: int, events: int) -> int:
        """The ``events`` (a poll(2) mask such as ``POLL_IN``) that ``fd`` has now; 0 if none."""
        p = self._poll
        p.register(fd, events)
        try:
            res = p.poll(0)
        finally:
            p.unregister(fd)
        return res[0][1] if res else 0


class EpollPoller:
    """epoll(7): every fd registered once, edge-triggered, for as long as the hub knows it.

    Facts about epoll this relies on (each checked on Linux):

    * **One registration per fd, no syscall per wait.**  ``register`` asks for
      every event at once (``_REGISTER``) with ``EPOLLET``: epoll reports each
      change of state once, whether or not anyone waits, and the hub keeps an
      edge nobody waited for in the fd's record (``FdState.rready``/``wready``).
      A waiter has always just got EAGAIN from the real call, so any edge that
      matters comes after its try and is reported by a later poll.
    * **A stale registration cannot make the loop spin.**  epoll keys a
      registration by the fd number *and* the open file behind it, and drops it
      by itself when the file's last descriptor closes.  A file closed behind
      the hub's back while a duplicate (``dup``, a forked child, a passed fd)
      keeps it open stays in the set and is reported under its old number,
      which may by then name another file; deleting by that number fails
      (ENOENT, or EBADF if the number is free), so the hub cannot remove it.
      Edge-triggered, such an entry is reported once per change of the old
      file: at most a spurious wake-up, after which the woken greenthread
      retries its call and waits again.  Level-triggered, it would be reported
      by every poll for as long as the old file stays readable: a busy loop
      nothing could end.
    * **FileExistsError on register** means this very (number, file) pair is
      already in the set: a registration left from before the hub forgot the
      fd (closed behind its back while a duplicate kept the file open, and the
      number came back as another duplicate of that file), or made by a forked
      child in the instance it shares with us.  It is ours to take over:
      ``modify`` it to our mask.
    * **Fork**: the child's copy of the epoll fd names the same epoll instance
      as the parent's.  A registration made by either shows in both, and an
      edge one of them takes is gone for the other.  So a child must never
      poll or register through it: the hub's fork handler makes the child a
      new instance (and eventfd) and puts it under the old numbers with
      ``dup2``, which closes only the child's copies and leaves the parent's
      instance as it was (``renew_after_fork``).
    * **EPOLLRDHUP** reports the peer's FIN (``shutdown`` or ``close``) as a flag
      of its own.  Data and FIN arriving together make one edge
      (``EPOLLIN|EPOLLRDHUP``); the hub records the hang-up in ``FdState.hup``,
      which tells a reader that has just emptied the socket that its next
      ``recv`` returns at once (end of file) rather than waiting for an edge
      that will never come.  ``EPOLLHUP`` and ``EPOLLERR`` are always reported;
      they wake readers and writers alike, whose real call then says what
      happened.
    * **Wake-ups go through an eventfd**: one fd (a pipe needs two) holding a
      counter.  A write adds to it and never blocks; one read takes the sum and
      resets it, so any number of wake-ups between two turns cost the hub one
      read.  Registered edge-triggered, every write is a new edge even if the
      hub has not read yet, and the hub reads the counter *before* it moves the
      queued callbacks: a callback queued after that read comes with a write
      that ends the next poll, so none is left waiting.
    """

    IN = select.EPOLLIN | select.EPOLLPRI | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    OUT = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
    HUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    _REGISTER = (
        select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
    )

    def __init__(self) -> None:
        self._epoll = _epoll()
        self.wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._epoll.register(self.wake_fd, select.EPOLLIN | select.EPOLLET)
        # The hub's loop calls these as they are: no Python frame in between.
        self.poll = self._epoll.poll
        self.wake = partial(os.eventfd_write, self.wake_fd, 1)

    def register(self, fd: int) -> None:
        """Report every event of ``fd`` from now on, edge-triggered."""
        try:
            self._epoll.register(fd, self._REGISTER)
        except FileExistsError:
            self._epoll.modify(fd, self._REGISTER)  # see the class docstring

    def unregister(self, fd: int) -> None:
        """Stop reporting ``fd``; harmless if it is unknown or already closed."""
        try:
            self._epoll.unregister(fd)
        except (OSError, ValueError):
            pass

    def registered(self, fd: int) -> bool:
        """True if the file open under ``fd`` now is the one registered.

        epoll keys a registration by number *and* file, and drops it when the
        file closes: re-arming fails (ENOENT, or EBADF for a free number) for a
        file closed behind the hub's back, whether or not the number came back
        as another.  Costs one syscall, and at most one spurious edge.
        """
        try:
            self._epoll.modify(fd, self._REGISTER)
        except (OSError, ValueError):
            return False
        return True

    def add_wakeup_fd(self, fd: int) -> None:
        """End a poll whenever ``fd`` gets data (the caller drains it)."""
        self._epoll.register(fd, select.EPOLLIN | select.EPOLLET)

    def clear_wake(self) -> None:
        """Reset the wake-up counter (before handling what the wakers queued)."""
        try:
            os.eventfd_read(self.wake_fd)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the epoll instance and the eventfd."""
        self._epoll.close()
        os.close(self.wake_fd)

    def renew_after_fork(self, fds: Iterable[int]) -> None:
        """In a forked child: an epoll instance and an eventfd of its own (see the
        class docstring), under the numbers of the shared ones; ``fds`` registered."""
        fresh = _epoll()
        replace_fd(self._epoll.fileno(), os.dup(fresh.fileno()))
        fresh.close()
        replace_fd(self.wake_fd, os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC))
        self._epoll.register(self.wake_fd, select.EPOLLIN | select.EPOLLET)
        for fd in fds:
            try:
                self.register(fd)
            except OSError:
                pass  # closed behind the hub's back: as after any such close


class PollPoller:
    """poll(2), level-triggered: for where epoll is missing.

    poll(2) keeps no registrations in the kernel, and a level-triggered poll
    reports a writable socket every time it is asked.  So each fd is polled
    only in the directions someone waits for: before every poll the masks are
    brought in line with the hub's fd records (``fds``: fd -> ``FdState``).
    The wake-up channel is a pipe, since eventfd is Linux-only.
    """

    IN = POLL_IN
    OUT = POLL_OUT
    HUP = select.POLLHUP | select.POLLERR

    def __init__(self, fds: Mapping[int, Any]) -> None:
        self._fds = fds
        self._poll = _poll()
        self._masks: dict[int, int] = {}  # fd -> the mask in force
        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)
        self.wake_fd, self._wake_w = r, w
        self._poll.register(r, select.POLLIN)

    def register(self, fd: int) -> None:
        """Take ``fd`` on, polled in no direction until someone waits on it."""
        self._poll.register(fd, 0)
        self._masks[fd] = 0

    def unregister(self, fd: int) -> None:
        """Forget ``fd``; harmless if it is unknown or already closed."""
        self._masks.pop(fd, None)
        try:
            self._poll.unregister(fd)
        except (KeyError, OSError, ValueError):
            pass

    def registered(self, fd: int) -> bool:
        """True for an fd taken on: poll(2) asks by number, so a reused number is polled afresh."""
        return fd in self._masks

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        """Wait up to ``timeout`` seconds (negative: forever) for the directions waited on."""
        masks = self._masks
        for fd, st in self._fds.items():
            mask = (POLL_IN if st.reader is not None else 0) | (
                POLL_OUT if st.writer is not None else 0
            )
            if masks.get(fd) != mask:
                self._poll.modify(fd, mask)
                masks[fd] = mask
        return self._poll.poll(None if timeout < 0 else timeout * 1000)

    def wake(self) -> None:
        """End the current or next poll; safe from any thread or signal handler."""
        try:
            os.write(self._wake_w, b"\0")
        except BlockingIOError:
            pass  # the pipe is full of wake-ups already

    def add_wakeup_fd(self, fd: int) -> None:
        """End a poll whenever ``fd`` gets data (the caller drains it)."""
        self._poll.register(fd, POLL_IN)

    def clear_wake(self) -> None:
        """Empty the wake-up pipe (before handling what the wakers queued)."""
        try:
            os.read(self.wake_fd, 4096)
        except BlockingIOError:
            pass

    def close(self) -> None:
        """Close the wake-up pipe (a poll object holds no fd)."""
        os.close(self.wake_fd)
        os.close(self._wake_w)

    def renew_after_fork(self, fds: Iterable[int]) -> None:
        """In a forked child: a wake-up pipe of its own, under the shared one's
        numbers (poll(2) keeps no registrations in the kernel: nothing else)."""
        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        replace_fd(self.wake_fd, r)
        replace_fd(self._wake_w, w)


def replace_fd(old: int, new: int) -> None:
    """Put the file open under ``new`` under the number ``old`` (closing what was
    there: in a forked child, only the child's copy), and close ``new``."""
    os.dup2(new, old, inheritable=False)
    os.close(new)


def new_poller(fds: Mapping[int, Any], kind: str | None = None) -> EpollPoller | PollPoller:
    """The poller for a new hub whose fd records are ``fds``: epoll where the
    system has it, unless ``NETTOOLS_HUB=poll`` (or ``kind="poll"``) asks for
    the portable poll(2) one."""
    if kind == "poll" or _epoll is None:
        return PollPoller(fds)
    if kind == "epoll" or _USE_EPOLL:
        return EpollPoller()
    return PollPoller(fds)
