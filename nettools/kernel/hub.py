"""The hub: one event loop per OS thread, and how a wait becomes a switch and back.

Every greenthread is a greenlet whose parent is the hub's greenlet. Nothing in
nettools blocks an OS thread; instead a greenthread that must wait does three
things:

1. It records who should wake it: its own greenlet goes into a waiter slot --
   the reader/writer slot of a file descriptor, a list of waiters on an Event
   or Queue, or the callback of a timer.
2. It switches to the hub (``hub.switch()``). The greenthread's frame stays
   suspended exactly where it called ``switch``.
3. When the hub, running its loop, finds that the thing happened -- epoll
   reported the fd ready, the timer's deadline passed, ``Event.send`` scheduled
   a notification -- it takes the greenlet out of the slot and switches to it,
   possibly with a value (``g.switch(value)``) or an exception (``g.throw(exc)``).
   The greenthread's ``switch()`` call returns that value (or raises), and it
   runs on until its next wait, which switches back into the hub's loop right
   after the point where the hub had switched out.

So a wait is a pair of greenlet switches and no OS-level blocking; the only
place the thread really sleeps is ``epoll.poll`` inside the hub, and only when
no greenthread is ready to run.

The loop has three sources of work, checked in this order each turn:

* the *ready queue*: plain callables to run now (``spawn``, ``sleep(0)``,
  Event and Queue notifications). Only the batch present at the start of a turn
  runs, so a greenthread that keeps yielding cannot starve I/O or timers.
* the *timer heap* of ``(deadline, seq, Timer)``. Cancelling only marks a timer;
  the heap is compacted when cancelled entries dominate (most timeouts are
  cancelled before they fire).
* *epoll*. Each fd is registered once, edge-triggered for read and write, and
  stays registered until ``notify_close``. A wait only fills a slot in a small
  per-fd record: no syscall per wait. Waits come from code that tried the real
  non-blocking call first and got EAGAIN, so an edge that arrives after that
  try is always reported by the next poll. ``trampoline`` serves callers that
  did not try first: it checks the fd's level state before and after waiting.

A waiter is only ever woken by whoever removes it from its slot, and every wait
removes itself from its slot when it leaves by an exception (timeout, kill), so
a stale wake-up can never reach a greenthread that has moved on to another wait.

Other threads (and signal handlers) hand work to the hub only through
``run_callback_threadsafe``: a deque plus an eventfd the hub polls.

If the loop finds nothing that could ever wake anyone -- no ready callback, no
live timer, no fd waiter, no outstanding thread job -- it throws
``DeadlockError`` into the thread's main greenlet instead of sleeping forever.
"""

from __future__ import annotations

import errno
import heapq
import logging
import os
import select
import sys
import time
from _thread import _local as _thread_local
from collections import deque
from collections.abc import Callable
from itertools import count
from typing import Any

from greenlet import getcurrent, greenlet

__all__ = [
    "Hub",
    "Timer",
    "get_hub",
    "current_hub",
    "trampoline",
    "notify_close",
    "notify_opened",
    "IOClosed",
    "DeadlockError",
    "ConcurrentWaitError",
    "READ",
    "WRITE",
]

log = logging.getLogger("nettools.hub")

READ = 1
WRITE = 2

# NETTOOLS_HUB=poll forces the portable poll(2) loop (what runs where epoll is missing).
_HAS_EPOLL = hasattr(select, "epoll") and os.environ.get("NETTOOLS_HUB") != "poll"
# Bound now: after monkey-patching, select.epoll/select.poll are green wrappers.
_epoll = getattr(select, "epoll", None)
_poll = select.poll
if _HAS_EPOLL:
    _EV_IN = (
        select.EPOLLIN | select.EPOLLPRI | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    )
    _EV_OUT = select.EPOLLOUT | select.EPOLLHUP | select.EPOLLERR
    _EV_HUP = select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
    _EV_REGISTER = (
        select.EPOLLIN | select.EPOLLPRI | select.EPOLLOUT | select.EPOLLRDHUP | select.EPOLLET
    )
else:  # poll(2): where epoll is missing, or NETTOOLS_HUB=poll
    _EV_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
    _EV_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR
    _EV_HUP = select.POLLHUP | select.POLLERR

# poll() masks for level checks: hang-ups and errors count as ready (the real call
# then reports them).
_PROBE_IN = select.POLLIN | select.POLLPRI | select.POLLHUP | select.POLLERR
_PROBE_OUT = select.POLLOUT | select.POLLHUP | select.POLLERR

# Hub-level exceptions that must reach the main greenlet rather than be logged.
_SYSTEM_EXCEPTIONS = (KeyboardInterrupt, SystemExit)


class IOClosed(OSError):
    """Raised in a greenthread whose file descriptor was closed while it waited."""

    def __init__(self, fd: int) -> None:
        super().__init__(errno.EBADF, f"file descriptor {fd} was closed while waiting on it")


class DeadlockError(RuntimeError):
    """The main greenlet waits on something that nothing can ever deliver."""


class ConcurrentWaitError(RuntimeError):
    """A second greenthread tried to wait for the same direction of one fd."""


class Timer:
    """A scheduled call; ``cancel()`` it to drop it.  Created by ``Hub.schedule``."""

    __slots__ = ("deadline", "callback", "args", "hub", "active")

    def __init__(self, hub: Hub, deadline: float, callback: Callable, args: tuple) -> None:
        self.hub = hub
        self.deadline = deadline
        self.callback = callback
        self.args = args
        self.active = True

    @property
    def pending(self) -> bool:
        """True until the timer fires or is cancelled."""
        return self.active

    def cancel(self) -> None:
        """Stop the timer from firing; harmless if it already fired."""
        if self.active:
            self.active = False
            # It stays in the heap until its deadline; drop what it holds now.
            self.args = ()
            self.hub._timer_cancelled()

    def __repr__(self) -> str:
        state = "pending" if self.active else "done"
        due = self.deadline - time.monotonic()
        return f"<Timer {state} in {due:.3f}s {self.callback!r}{self.args!r}>"


class _LocalTimer(Timer):
    """A timer that does nothing if the greenthread that scheduled it has died."""

    __slots__ = ("owner",)


class _FdState:
    """Per-fd record: who waits to read, who waits to write, and cached readiness."""

    __slots__ = ("fd", "reader", "writer", "rready", "wready", "hup")

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.reader: greenlet | None = None
        self.writer: greenlet | None = None
        # Edges seen while nobody waited (trampoline and socket.recv consult them).
        self.rready = False
        self.wready = False
        # The peer hung up or the fd has an error: the state no longer changes, so
        # no further edge is to be expected (see green socket recv).
        self.hup = False


def _root_greenlet() -> greenlet:
    g = getcurrent()
    while g.parent is not None:
        g = g.parent
    return g


class Hub:
    """The event loop of one OS thread.  Get it with ``get_hub()``."""

    #: Compact the timer heap once this many cancelled timers sit in it
    #: (and they are at least half of it).
    timer_compact_threshold = 1000
    #: While greenthreads keep the ready queue busy, poll I/O after this many callbacks.
    busy_poll_every = 64

    def __init__(self) -> None:
        self.greenlet = greenlet(self.run, parent=_root_greenlet())
        self.ready: deque[Callable[[], Any]] = deque()
        self.timers: list[tuple[float, int, Timer]] = []
        self._ncancelled = 0
        self._seq = count()
        self.fds: dict[int, _FdState] = {}
        #: Greenthreads currently parked on an fd (for deadlock detection).
        self.io_waiters = 0
        #: Outstanding references that may wake the hub from outside (thread jobs).
        self.external_refs = 0
        self._tsq: deque[Callable[[], Any]] = deque()
        self._probe = _poll()
        if _HAS_EPOLL:
            self._poller = _epoll()
            self._wake_fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
            self._poller.register(self._wake_fd, select.EPOLLIN | select.EPOLLET)
        else:
            self._poller = _poll()
            r, w = os.pipe()
            os.set_blocking(r, False)
            os.set_blocking(w, False)
            self._wake_fd, self._wake_w = r, w
            self._poller.register(r, select.POLLIN)
        self._signal_fds: tuple[int, int] | None = None  # see wake_on_signals()
        self._poll_masks: dict[int, int] = {}  # poll(2) fallback only: fd -> mask in force
        self._closed = False
        #: Called with no arguments at the top of every loop turn (debugging aids).
        self.turn_hooks: list[Callable[[], None]] = []
        #: Number of waits so far (lets a worker tell whether its call ever waited).
        self.switches = 0
        #: Worker greenlets ready to run the next spawned call (see greenthread.py).
        self.idle_workers: list[greenlet] = []

    # ----------------------------------------------------------------- switching

    def switch(self) -> Any:
        """Suspend the current greenthread until something switches back to it."""
        if getcurrent() is self.greenlet:
            raise RuntimeError(
                "cannot block inside the hub: a hub callback tried to wait; "
                "spawn a greenthread to do the blocking work instead"
            )
        self.switches += 1
        return self.greenlet.switch()

    def park(
        self, waiters: deque, timeout: float | None = None, expired: Any = None, token: Any = None
    ) -> Any:
        """Wait in ``waiters`` until a waker pops this greenthread and switches to it.

        Returns the value the waker switched with, or ``expired`` after ``timeout``
        seconds.  ``token`` (default: the current greenlet) is what goes into
        ``waiters``; it must have a ``switch`` method that resumes this greenthread.
        A waker must pop the token and switch to it in the same step (from the
        hub), so a wait that already left can never be woken by a stale wake-up.
        """
        if token is None:
            token = getcurrent()
        waiters.append(token)
        timer = None
        if timeout is not None:
            timer = self.schedule(timeout, _expire_parked, waiters, token, expired)
        try:
            return self.switch()
        except BaseException:
            _discard(waiters, token)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def yield_ready(self) -> None:
        """Let every other ready greenthread run once, then continue (``sleep(0)``)."""
        cur = getcurrent()
        if cur is self.greenlet:
            raise RuntimeError("cannot yield from inside the hub")
        sw = cur.switch
        self.ready.append(sw)
        self.switches += 1
        try:
            self.greenlet.switch()
        except BaseException:
            # Thrown out before our turn came: drop the now-stale wake-up.
            _discard(self.ready, sw)
            raise

    # ------------------------------------------------------------------- timers

    def schedule(self, seconds: float, callback: Callable, *args: Any) -> Timer:
        """Call ``callback(*args)`` from the hub after ``seconds``."""
        t = Timer(self, time.monotonic() + seconds, callback, args)
        heapq.heappush(self.timers, (t.deadline, next(self._seq), t))
        return t

    def schedule_local(self, seconds: float, callback: Callable, *args: Any) -> Timer:
        """Like ``schedule``, but skipped if the calling greenthread has died by then."""
        t = _LocalTimer(self, time.monotonic() + seconds, callback, args)
        t.owner = getcurrent()
        heapq.heappush(self.timers, (t.deadline, next(self._seq), t))
        return t

    # eventlet's names
    schedule_call_global = schedule
    schedule_call_local = schedule_local

    def _timer_cancelled(self) -> None:
        self._ncancelled += 1
        n = self._ncancelled
        if n > self.timer_compact_threshold and n * 2 > len(self.timers):
            self.timers = [e for e in self.timers if e[2].active]
            heapq.heapify(self.timers)
            self._ncancelled = 0

    def live_timers(self) -> int:
        """Number of timers that have neither fired nor been cancelled."""
        return len(self.timers) - self._ncancelled

    # --------------------------------------------------------------- callbacks

    def run_callback(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` from the hub on its next turn (same thread only)."""
        self.ready.append(callback)

    def run_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the hub's thread; safe from any thread or signal handler."""
        self._tsq.append(callback)
        if _HAS_EPOLL:
            os.eventfd_write(self._wake_fd, 1)
        else:
            try:
                os.write(self._wake_w, b"\0")
            except BlockingIOError:
                pass

    def wake_on_signals(self) -> None:
        """Make every signal wake this hub (main thread only; idempotent).

        Python runs a signal handler only between bytecodes.  A signal landing
        just before the hub blocks in ``epoll.poll`` would otherwise wait for
        unrelated I/O, maybe forever; with ``signal.set_wakeup_fd`` on a pipe the
        hub watches, the C-level handler itself ends the wait.
        """
        if self._signal_fds is not None:
            return
        import signal

        r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            signal.set_wakeup_fd(w, warn_on_full_buffer=False)
        except ValueError:
            os.close(r)
            os.close(w)
            raise
        self._signal_fds = (r, w)
        self._poller.register(r, select.EPOLLIN | select.EPOLLET if _HAS_EPOLL else _PROBE_IN)

    def ref(self) -> None:
        """Declare that something outside the hub may still wake a waiter."""
        self.external_refs += 1

    def unref(self) -> None:
        """Undo one ``ref()``."""
        self.external_refs -= 1

    # ---------------------------------------------------------------------- I/O

    def _state(self, fd: int) -> _FdState:
        st = self.fds.get(fd)
        if st is None:
            st = _FdState(fd)
            try:
                if _HAS_EPOLL:
                    self._poller.register(fd, _EV_REGISTER)
                else:
                    # Level-triggered: the mask follows the waiters (_poll_fallback).
                    self._poller.register(fd, 0)
                    self._poll_masks[fd] = 0
            except FileExistsError:
                # Registered under an fd we forgot about (closed and reused behind
                # our back); take the registration over.
                self._poller.modify(fd, _EV_REGISTER)
            self.fds[fd] = st
        return st

    def wait_read(self, fd: int, timeout: float | None = None, timeout_exc: Any = None) -> None:
        """Park until ``fd`` may be readable.  For callers that just got EAGAIN.

        May return spuriously; the caller retries its non-blocking call.
        """
        st = self.fds.get(fd) or self._state(fd)
        cur = getcurrent()
        if st.reader is not None:
            raise ConcurrentWaitError(
                f"second simultaneous read on fd {fd}: {st.reader!r} is already reading"
            )
        st.reader = cur
        st.rready = False
        self.io_waiters += 1
        timer = None if timeout is None else self.schedule(timeout, _io_timeout, cur, timeout_exc)
        try:
            self.switch()
        finally:
            self.io_waiters -= 1
            if st.reader is cur:
                st.reader = None
            if timer is not None:
                timer.cancel()

    def wait_write(self, fd: int, timeout: float | None = None, timeout_exc: Any = None) -> None:
        """Park until ``fd`` may be writable.  For callers that just got EAGAIN."""
        st = self.fds.get(fd) or self._state(fd)
        cur = getcurrent()
        if st.writer is not None:
            raise ConcurrentWaitError(
                f"second simultaneous write on fd {fd}: {st.writer!r} is already writing"
            )
        st.writer = cur
        st.wready = False
        self.io_waiters += 1
        timer = None if timeout is None else self.schedule(timeout, _io_timeout, cur, timeout_exc)
        try:
            self.switch()
        finally:
            self.io_waiters -= 1
            if st.writer is cur:
                st.writer = None
            if timer is not None:
                timer.cancel()

    def watch(self, fd: int, direction: int, token: Any) -> None:
        """Put ``token`` in ``fd``'s READ or WRITE slot; the hub calls ``token.switch()``
        (once, from the hub) when the fd may be ready in that direction.

        For waits on several fds at once (select, selectors): the caller parks
        itself, and must ``unwatch`` every fd afterwards, however it was woken.
        """
        st = self.fds.get(fd) or self._state(fd)
        if direction == READ:
            if st.reader is not None and st.reader is not token:
                raise ConcurrentWaitError(f"second simultaneous read on fd {fd}")
            st.reader = token
            st.rready = False
        else:
            if st.writer is not None and st.writer is not token:
                raise ConcurrentWaitError(f"second simultaneous write on fd {fd}")
            st.writer = token
            st.wready = False
        self.io_waiters += 1

    def unwatch(self, fd: int, direction: int, token: Any) -> None:
        """Undo one ``watch``."""
        self.io_waiters -= 1
        st = self.fds.get(fd)
        if st is None:
            return
        if direction == READ:
            if st.reader is token:
                st.reader = None
        elif st.writer is token:
            st.writer = None

    def probe(self, fd: int, events: int) -> int:
        """Level-triggered readiness of ``fd`` right now (a zero-timeout poll)."""
        p = self._probe
        p.register(fd, events)
        try:
            res = p.poll(0)
        finally:
            p.unregister(fd)
        return res[0][1] if res else 0

    def notify_close(self, fd: int) -> None:
        """Tell the hub ``fd`` is about to be closed: its waiters get ``IOClosed``.

        Call it *before* closing the fd.
        """
        st = self.fds.pop(fd, None)
        if st is None:
            return
        self._poll_masks.pop(fd, None)
        try:
            self._poller.unregister(fd)
        except (OSError, ValueError):
            pass
        if st.reader is not None or st.writer is not None:
            self.ready.append(lambda: _throw_closed(st))

    def notify_opened(self, fd: int) -> None:
        """Tell the hub ``fd`` is a new file: forget anything known about an old one."""
        if fd in self.fds:
            self.notify_close(fd)

    # -------------------------------------------------------------------- loop

    def run(self, *_ignored: Any) -> None:
        """The loop.  Never returns; runs until the thread exits.

        (A greenlet that ends before the hub ever ran starts it with its return
        value as argument; that value means nothing here.)"""
        ready = self.ready
        popleft = ready.popleft
        fds = self.fds
        tsq = self._tsq
        wake_fd = self._wake_fd
        if _HAS_EPOLL:
            poll = self._poller.poll
        else:
            poll = self._poll_fallback
        clock = time.monotonic
        heappop = heapq.heappop
        ev_in, ev_out, ev_hup = _EV_IN, _EV_OUT, _EV_HUP
        hooks = self.turn_hooks
        busy_poll_every = self.busy_poll_every
        ran = 0  # callbacks run since the last poll
        while True:
            if hooks:
                for hook in hooks:
                    try:
                        hook()
                    except BaseException:
                        self.report_error("error in hub turn hook %r", hook)

            # 1. The ready batch.
            n = len(ready)
            ran += n
            while n and ready:
                n -= 1
                cb = popleft()
                try:
                    cb()
                except _SYSTEM_EXCEPTIONS:
                    self._raise_in_main(sys.exc_info()[1])
                except BaseException:
                    self.report_error("error in hub callback %r", cb)

            # 2. Due timers.
            timers = self.timers
            if timers:
                now = clock()
                while timers and timers[0][0] <= now:
                    t = heappop(timers)[2]
                    if not t.active:
                        self._ncancelled -= 1
                        continue
                    t.active = False
                    if type(t) is _LocalTimer and t.owner.dead:
                        continue
                    try:
                        t.callback(*t.args)
                    except _SYSTEM_EXCEPTIONS:
                        self._raise_in_main(sys.exc_info()[1])
                    except BaseException:
                        self.report_error("error in timer %r", t)
                    timers = self.timers  # compaction may have replaced the list

            # 3. I/O.
            if ready:
                if ran < busy_poll_every:
                    continue
                timeout = 0.0
            elif len(timers) > self._ncancelled:  # a live timer (cancelled ones wake no one)
                timeout = timers[0][0] - clock()
                if timeout < 0:
                    timeout = 0.0
            elif self.io_waiters or self.external_refs or tsq:
                timeout = -1.0
            else:
                self._raise_in_main(
                    DeadlockError(
                        "this wait can never end: no greenthread is ready, no timer is "
                        "pending, and nothing waits on a file descriptor or a thread"
                    )
                )
                continue
            ran = 0
            try:
                events = poll(timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                events = ()
            except BaseException:
                # Only a Python signal handler can raise here (KeyboardInterrupt,
                # or whatever the program's own handler raises): it belongs to
                # the main greenlet, as it would without nettools.
                self._raise_in_main(sys.exc_info()[1])
                continue
            for fd, ev in events:
                st = fds.get(fd)
                if st is None:
                    if fd == wake_fd:
                        self._drain_threadsafe()
                    elif self._signal_fds is not None and fd == self._signal_fds[0]:
                        _drain_fd(fd)  # the Python handlers run as soon as we return
                    continue
                if ev & ev_hup:
                    st.hup = True
                if ev & ev_in:
                    g = st.reader
                    if g is not None:
                        st.reader = None
                        try:
                            g.switch()
                        except _SYSTEM_EXCEPTIONS:
                            self._raise_in_main(sys.exc_info()[1])
                        except BaseException:
                            self.report_error("error in greenthread %r woken for reading", g)
                    else:
                        st.rready = True
                if ev & ev_out:
                    g = st.writer
                    if g is not None:
                        st.writer = None
                        try:
                            g.switch()
                        except _SYSTEM_EXCEPTIONS:
                            self._raise_in_main(sys.exc_info()[1])
                        except BaseException:
                            self.report_error("error in greenthread %r woken for writing", g)
                    else:
                        st.wready = True

    def report_error(self, msg: str, *args: Any) -> None:
        """Log the exception being handled, from a greenthread of its own.

        Logging may need a lock that, after monkey-patching, is a green lock some
        greenthread holds across I/O; the hub itself must never wait for it.
        """
        exc_info = sys.exc_info()
        g = greenlet(lambda: log.error(msg, *args, exc_info=exc_info), parent=self.greenlet)
        self.ready.append(g.switch)

    def _poll_fallback(self, timeout: float) -> list:
        """poll(2) in place of epoll: only directions someone waits for are polled
        (level-triggered polling of a writable socket would otherwise never sleep)."""
        masks = self._poll_masks
        for fd, st in self.fds.items():
            mask = (_PROBE_IN if st.reader is not None else 0) | (
                _PROBE_OUT if st.writer is not None else 0
            )
            if masks.get(fd) != mask:
                self._poller.modify(fd, mask)
                masks[fd] = mask
        return self._poller.poll(None if timeout < 0 else timeout * 1000)

    def _drain_threadsafe(self) -> None:
        try:
            if _HAS_EPOLL:
                os.eventfd_read(self._wake_fd)
            else:
                os.read(self._wake_fd, 4096)
        except BlockingIOError:
            pass
        tsq = self._tsq
        ready = self.ready
        while tsq:
            ready.append(tsq.popleft())

    def _raise_in_main(self, exc: BaseException) -> None:
        """Deliver ``exc`` where the thread's main greenlet is waiting."""
        main = self.greenlet.parent
        main.throw(exc)

    def close(self) -> None:
        """Release the epoll and wake-up fds (the hub must not be used again)."""
        if self._closed:
            return
        self._closed = True
        if self._signal_fds is not None:
            import signal

            try:
                # Never leave the C handler writing into a closed (soon reused) fd.
                previous = signal.set_wakeup_fd(-1)
                if previous != self._signal_fds[1]:
                    signal.set_wakeup_fd(previous)
            except ValueError:
                pass  # not the main thread: nothing of ours is installed there
            for fd in self._signal_fds:
                os.close(fd)
        if _HAS_EPOLL:
            self._poller.close()  # a poll(2) object holds no fd
        os.close(self._wake_fd)
        if not _HAS_EPOLL:
            os.close(self._wake_w)

    def __repr__(self) -> str:
        return (
            f"<Hub ready={len(self.ready)} timers={self.live_timers()} "
            f"fds={len(self.fds)} io_waiters={self.io_waiters}>"
        )


def _drain_fd(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _discard(waiters: deque, item: Any) -> None:
    try:
        waiters.remove(item)
    except ValueError:
        pass


def _expire_parked(waiters: deque, g: greenlet, expired: Any) -> None:
    try:
        waiters.remove(g)
    except ValueError:
        return  # already woken by its waker
    g.switch(expired)


def _timeout_exception(exc: Any) -> BaseException:
    """``None``: a ``nettools.Timeout``; an exception instance: itself;
    a class or factory: called with no arguments."""
    if exc is None:
        from .timeout import Timeout  # the timeout layer sits on top of the hub

        return Timeout()
    if isinstance(exc, BaseException):
        return exc
    return exc()


def _io_timeout(g: greenlet, exc: Any) -> None:
    g.throw(_timeout_exception(exc))


def _throw_closed(st: _FdState) -> None:
    for attr in ("reader", "writer"):
        g = getattr(st, attr)
        if g is not None:
            setattr(st, attr, None)
            g.throw(IOClosed(st.fd))  # a watch() token must offer throw() too


# ---------------------------------------------------------------- per thread

_tls = _thread_local()


def get_hub() -> Hub:
    """Return this OS thread's hub, creating it on first use."""
    try:
        return _tls.hub
    except AttributeError:
        hub = _tls.hub = Hub()
        return hub


def current_hub() -> Hub | None:
    """This OS thread's hub if it has one (never creates one)."""
    return getattr(_tls, "hub", None)


def _reset_after_fork() -> None:
    # The child shares the parent's epoll instance; it needs its own hub.
    old = getattr(_tls, "hub", None)
    if old is None:
        return
    del _tls.hub
    try:
        old.close()
    except OSError:
        pass
    # If fork() was called from a greenthread, that greenthread must finish into
    # the child's new hub, not into the parent's (which will never run here).
    cur = getcurrent()
    if cur.parent is old.greenlet:
        cur.parent = get_hub().greenlet


os.register_at_fork(after_in_child=_reset_after_fork)


def _fileno(fd: Any) -> int:
    return fd if isinstance(fd, int) else fd.fileno()


def trampoline(
    fd: Any,
    read: bool = False,
    write: bool = False,
    timeout: float | None = None,
    timeout_exc: Any = None,
) -> None:
    """Wait until ``fd`` (an int or an object with ``fileno()``) is readable or writable.

    Exactly one of ``read``/``write`` must be true.  Unlike the edge-based
    ``Hub.wait_read``, this returns only once the fd really is ready (or has an
    error or hang-up), so it is safe to call without first trying the I/O.
    ``timeout_exc`` (default ``nettools.Timeout()``) is raised after ``timeout``
    seconds.
    """
    if read == write:
        raise ValueError("trampoline needs exactly one of read=True or write=True")
    fileno = _fileno(fd)
    hub = get_hub()
    mask = _PROBE_IN if read else _PROBE_OUT
    if hub.probe(fileno, mask):
        return
    deadline = None if timeout is None else time.monotonic() + timeout
    wait = hub.wait_read if read else hub.wait_write
    while True:
        remaining = None
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout_exception(timeout_exc)
        wait(fileno, remaining, timeout_exc)
        if hub.probe(fileno, mask):
            return


def notify_close(fd: Any) -> None:
    """Wake greenthreads waiting on ``fd`` with ``IOClosed``; call before closing it."""
    get_hub().notify_close(_fileno(fd))


def notify_opened(fd: Any) -> None:
    """Forget stale hub state for a newly opened ``fd`` number."""
    get_hub().notify_opened(_fileno(fd))
