"""The hub: one event loop per OS thread, and how a wait becomes a switch and back.

Every greenthread is a greenlet whose parent is the hub's greenlet. Nothing in
nettools blocks an OS thread; instead a greenthread that must wait does three
things:

1. It records who should wake it: its own greenlet goes into a waiter slot --
   the reader/writer slot of a file descriptor, a list of waiters on an Event
   or Queue, or the callback of a timer.
2. It switches to the hub (``hub.switch()``). The greenthread's frame stays
   suspended exactly where it called ``switch``.
3. When the hub, running its loop, finds that the thing happened -- the poller
   reported the fd ready, the timer's deadline passed, ``Event.send`` scheduled
   a notification -- it takes the greenlet out of the slot and switches to it,
   possibly with a value (``g.switch(value)``) or an exception (``g.throw(exc)``).
   The greenthread's ``switch()`` call returns that value (or raises), and it
   runs on until its next wait, which switches back into the hub's loop right
   after the point where the hub had switched out.

So a wait is a pair of greenlet switches and no OS-level blocking; the only
place the thread really sleeps is the poller's ``poll`` inside the hub, and
only when no greenthread is ready to run.

The loop has three sources of work, checked in this order each turn:

* the *timer heap* of ``(deadline, seq, Timer)``: the timers due now.
  Cancelling marks a timer (or drops it outright when it is the heap's last
  leaf, as a timeout set and cancelled between two hub turns is); the heap is
  compacted when cancelled entries dominate (most timeouts are cancelled
  before they fire).  Timers go first so
  that a greenthread that sets a timer due now and then yields (``sleep(0)``)
  finds it fired when it resumes.
* the *ready queue*: plain callables to run now (``spawn``, ``sleep(0)``,
  Event and Queue notifications). Only the batch present once the timers ran
  runs, so a greenthread that keeps yielding cannot starve I/O or timers.
* the *poller* (``poller.py``): epoll, each fd registered once, edge-triggered
  for read and write, until ``notify_close`` (poll(2) where epoll is missing).
  A wait only fills a slot in a small per-fd record (``fdwait.py``, where the
  waits live): no syscall per wait. Waits come from code that tried the real
  non-blocking call first and got EAGAIN, so an edge that arrives after that
  try is always reported by the next poll. ``trampoline`` serves callers that
  did not try first: it checks the fd's level state before and after waiting.

A waiter is only ever woken by whoever removes it from its slot, and every wait
removes itself from its slot when it leaves by an exception (timeout, kill), so
a stale wake-up can never reach a greenthread that has moved on to another wait.

Other threads (and signal handlers) hand work to the hub only through
``run_callback_threadsafe``: a deque plus the poller's wake-up channel (an
eventfd), which ends the hub's poll.

If the loop finds nothing that could ever wake anyone -- no ready callback, no
live timer, no fd waiter, no outstanding thread job -- it throws
``DeadlockError`` into the thread's main greenlet instead of sleeping forever.

What belongs in the hub, and what never does
--------------------------------------------

The hub is mechanism: it runs callbacks, fires timers, waits on fds through
its poller, switches greenlets, and says when a wait can never end.  All else
lives in the layers above it.

* **No protocol.** The hub never reads or writes a byte on an fd it watches
  for someone; it only says the fd may be ready, and the woken greenthread
  makes the real call.  (The only fds it reads are its own: the wake-up
  channel and the signal pipe.)
* **No policy.** Nothing here decides how long anything may take, how often
  to retry or how many of anything there may be: every timer, and every
  timeout with its exception, comes from a caller.  Its own knobs
  (``busy_poll_every``, ``timer_compact_threshold``) tune only its fairness
  and bookkeeping.
* **No blocking.** The thread sleeps only in the poller's ``poll``.
  Callbacks and timers run in the hub's greenlet and must not wait:
  ``switch()`` there raises ``RuntimeError``.
* **No logging on the hot path.** The loop never logs.  An error escaping a
  callback, a timer or a woken greenthread goes to ``report_error``, which
  logs from a greenthread of its own, since logging may wait for a lock that
  some greenthread holds; ``KeyboardInterrupt`` and ``SystemExit`` go to the
  main greenlet.
* **A lean loop.** Per event: one dict lookup, a few bit tests, a switch, with
  all it needs hoisted into locals.  Per turn: one check of ``turn_hooks``,
  on which anything more (statistics, tracing) rides.  Measure before and
  after any change to the loop.
"""

from __future__ import annotations

import heapq
import logging
import os
import sys
import time
import traceback
from _thread import _local as _thread_local
from collections import deque
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent, greenlet

from .fdwait import READ, WRITE, FdWaits, fileno_of
from .timers import LocalTimer, Timer, TimerHeap
from .wakeups import OutsideWakeups, drain_fd

__all__ = [
    "Hub",
    "Timer",
    "get_hub",
    "thread_hub",
    "set_hub_factory",
    "current_hub",
    "root_greenlet",
    "trampoline",
    "notify_close",
    "notify_opened",
    "discard",
    "DeadlockError",
    "SYSTEM_EXCEPTIONS",
]

log = logging.getLogger("nettools.hub")

#: Exceptions that, escaping a callback or greenthread, must reach the thread's
#: main greenlet rather than be logged.
SYSTEM_EXCEPTIONS = (KeyboardInterrupt, SystemExit)


class DeadlockError(RuntimeError):
    """The main greenlet waits on something that nothing can ever deliver."""


def root_greenlet() -> greenlet:
    """The main greenlet of the calling OS thread (where its greenlet tree starts)."""
    g = getcurrent()
    while g.parent is not None:
        g = g.parent
    return g


class Hub(FdWaits, TimerHeap, OutsideWakeups):
    """The event loop of one OS thread.  Get it with ``get_hub()``.

    The waits on file descriptors (``wait_read``, ``watch``, ``notify_close``,
    ...) come from ``FdWaits``, the timers (``schedule``, ...) from ``TimerHeap``,
    the wake-ups from other threads and signals from ``OutsideWakeups``.
    """

    #: While greenthreads keep the ready queue busy, poll I/O after this many callbacks.
    busy_poll_every = 64
    mark_as_reopened = FdWaits.notify_opened  # eventlet's name

    def __init__(self, poller: str | None = None) -> None:
        """``poller``: "epoll" or "poll" (default: epoll where there is one, unless
        ``NETTOOLS_HUB``/``EVENTLET_HUB`` say ``poll``)."""
        FdWaits.__init__(self, poller)  # fds, io_waiters, poller
        TimerHeap.__init__(self)  # timers
        OutsideWakeups.__init__(self)  # external_refs, the thread-safe queue, signals
        self.greenlet = greenlet(self.run, parent=root_greenlet())
        self.ready: deque[Callable[[], Any]] = deque()
        self._closed = False
        #: Called with no arguments at the top of every loop turn (debugging aids).
        self.turn_hooks: list[Callable[[], None]] = []
        #: Number of waits so far (lets a worker tell whether its call ever waited).
        self.switches = 0
        #: Worker greenlets ready to run the next spawned call (see greenthread.py).
        self.idle_workers: list[greenlet] = []
        #: Worker greenlets alive, idle ones included (counted where one is made
        #: and where one ends, never per call).
        self.workers = 0
        #: True while the loop runs (see ``abort``).
        self.running = False
        #: Greenthreads that yielded (``sleep(0)``): they go to the ready queue
        #: after the next poll, so whoever waits on I/O that is ready now runs
        #: before they resume, as with eventlet's and gevent's ``sleep(0)``.
        self.yielded: list[Callable[[], Any]] = []
        #: Those of them waiting for the poll under way.
        self.polling_yielded: list[Callable[[], Any]] = []

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
            discard(waiters, token)
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def yield_ready(self) -> None:
        """Let every other ready greenthread run once, then continue (``sleep(0)``).

        From a hub callback it does nothing, as in eventlet: the hub cannot
        yield to itself, and the callback's return lets the others run anyway.
        """
        cur = getcurrent()
        if cur is self.greenlet:
            return
        sw = cur.switch
        self.yielded.append(sw)
        self.switches += 1
        try:
            self.greenlet.switch()
        except BaseException:
            # Thrown out before our turn came: drop the now-stale wake-up.
            discard(self.yielded, sw)
            discard(self.polling_yielded, sw)
            discard(self.ready, sw)
            raise

    # ------------------------------------------------------------------- timers

    def live_timers(self) -> int:
        """Number of timers that have neither fired nor been cancelled, and may
        wake someone (a timed read's timer idling between reads does not)."""
        return len(self.timers) - self._ncancelled - self.idle_timers

    # eventlet's debugging switches on the hub (``nettools.debug`` has the others).
    #: Show the stack of each greenthread waiting on an fd in ``debug.format_hub_listeners``.
    debug_listeners = False
    #: Print the traceback of an error in a timer callback to stderr too.
    debug_exceptions = False

    def set_debug_listeners(self, value: bool) -> None:
        """eventlet's ``hub.set_debug_listeners``: see ``debug_listeners``."""
        self.debug_listeners = bool(value)

    def set_timer_exceptions(self, value: bool) -> None:
        """eventlet's ``hub.set_timer_exceptions``: see ``debug_exceptions``."""
        self.debug_exceptions = bool(value)

    @staticmethod
    def clock() -> float:
        """The hub's clock (``time.monotonic``): timer deadlines are in its seconds."""
        return time.monotonic()

    def abort(self, wait: bool = False) -> None:
        """Pause the loop: at the top of its next turn it hands control to the
        main greenlet instead of going on, and ``running`` becomes False.  It
        picks up where it was at the next wait.  ``wait=True`` switches to the
        hub so that the pause has happened when ``abort`` returns."""
        if self.running and self._pause not in self.turn_hooks:
            self.turn_hooks.append(self._pause)
        if wait and getcurrent() is not self.greenlet and self.running:
            self.switch()

    def _pause(self) -> None:
        self.turn_hooks.remove(self._pause)
        self.running = False
        try:
            self.greenlet.parent.switch()
        finally:
            self.running = True

    # --------------------------------------------------------------- callbacks

    def run_callback(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` from the hub on its next turn (same thread only)."""
        self.ready.append(callback)

    # -------------------------------------------------------------------- loop

    def run(self, *_ignored: Any) -> None:
        """The loop.  Never returns; runs until the thread exits.

        (A greenlet that ends before the hub ever ran starts it with its return
        value as argument; that value means nothing here.)"""
        ready = self.ready
        popleft = ready.popleft
        record_of = self.fds.get
        tsq = self._tsq
        poller = self.poller
        poll = poller.poll
        wake_fd = poller.wake_fd
        clock = time.monotonic
        heappop = heapq.heappop
        timers = self.timers  # one list for good (compaction works in place)
        ev_in, ev_out, ev_hup = poller.IN, poller.OUT, poller.HUP
        hooks = self.turn_hooks
        busy_poll_every = self.busy_poll_every
        ran = 0  # callbacks run since the last poll
        self.running = True
        while True:
            if hooks:
                for hook in hooks:
                    try:
                        hook()
                    except BaseException:
                        self.report_error("error in hub turn hook %r", hook)

            # 1. Due timers: a timer due now runs before a greenthread that yielded
            # after setting it (``sleep(0)`` lets it fire).
            if timers:
                now = clock()
                while timers and timers[0][0] <= now:
                    t = heappop(timers)[2]
                    if not t.active:
                        self._ncancelled -= 1
                        continue
                    t.active = False
                    if type(t) is LocalTimer and t.owner.dead:
                        continue
                    try:
                        t.callback(*t.args)
                    except SYSTEM_EXCEPTIONS:
                        self._raise_in_main(sys.exc_info()[1])
                    except BaseException:
                        if self.debug_exceptions:
                            traceback.print_exc()
                        self.report_error("error in timer %r", t)

            # 2. The ready batch (what the timers just readied included).
            n = len(ready)
            ran += n
            while n and ready:
                n -= 1
                cb = popleft()
                try:
                    cb()
                except SYSTEM_EXCEPTIONS:
                    self._raise_in_main(sys.exc_info()[1])
                except BaseException:
                    self.report_error("error in hub callback %r", cb)
            # What ran must not stay alive while the hub waits (a thread pool
            # job's function, its object): once per turn, not per callback.
            cb = t = None

            # 3. I/O.
            yielded = self.yielded
            if ready:
                if ran < busy_poll_every and not yielded:
                    continue
                timeout = 0.0
            elif yielded:
                timeout = 0.0
            elif len(timers) > self._ncancelled + self.idle_timers:
                # A live timer (cancelled and idle ones wake no one; idle ones
                # fire with the next live one, or whenever the loop polls next).
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
            if yielded:
                self.polling_yielded, self.yielded = yielded, []
            try:
                events = poll(timeout)
            except InterruptedError:  # pragma: no cover - PEP 475 retries for us
                events = ()
            except BaseException:
                # Only a Python signal handler can raise here (KeyboardInterrupt,
                # or whatever the program's own handler raises): it belongs to
                # the main greenlet, as it would without nettools.
                events = ()
                self._raise_in_main(sys.exc_info()[1])
            for fd, ev in events:
                st = record_of(fd)
                if st is None:
                    if fd == wake_fd:
                        self._drain_threadsafe()
                    elif self._signal_fds is not None and fd == self._signal_fds[0]:
                        drain_fd(fd)  # the Python handlers run as soon as we return
                    continue
                if ev & ev_hup:
                    st.hup = True
                if ev & ev_in:
                    g = st.reader
                    if g is not None:
                        st.reader = None
                        try:
                            g.switch()
                        except SYSTEM_EXCEPTIONS:
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
                        except SYSTEM_EXCEPTIONS:
                            self._raise_in_main(sys.exc_info()[1])
                        except BaseException:
                            self.report_error("error in greenthread %r woken for writing", g)
                    else:
                        st.wready = True
            if self.polling_yielded:
                ready.extend(self.polling_yielded)
                self.polling_yielded = []

    def report_error(self, msg: str, *args: Any) -> None:
        """Log the exception being handled, from a greenthread of its own.

        Logging may need a lock that, after monkey-patching, is a green lock some
        greenthread holds across I/O; the hub itself must never wait for it.
        """
        exc_info = sys.exc_info()
        g = greenlet(lambda: log.error(msg, *args, exc_info=exc_info), parent=self.greenlet)
        self.ready.append(g.switch)

    def _raise_in_main(self, exc: BaseException) -> None:
        """Deliver ``exc`` where the thread's main greenlet is waiting."""
        main = self.greenlet.parent
        main.throw(exc)

    def close(self) -> None:
        """Release the poller's and the signal pipe's fds (the hub must not be used again)."""
        if self._closed:
            return
        self._closed = True
        self._close_signal_pipe()
        self.poller.close()

    def renew_after_fork(self) -> None:
        """In a forked child: poller and signal pipe of its own, under the same fd
        numbers (the loop holds them); everything else -- ready greenthreads,
        timers, fd waits -- goes on as it was."""
        if self._closed:
            return
        self.poller.renew_after_fork(list(self.fds))
        self._renew_signal_pipe()

    def __repr__(self) -> str:
        return (
            f"<Hub ready={len(self.ready)} timers={self.live_timers()} "
            f"fds={len(self.fds)} io_waiters={self.io_waiters}>"
        )


def discard(waiters: deque, item: Any) -> None:
    """Remove ``item`` from ``waiters`` if it is still there (a wait leaving by
    an exception drops its own slot this way)."""
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


# ---------------------------------------------------------------- per thread

#: Per OS thread: ``thread_hub.hub`` is the thread's hub once it has one.  Hot
#: paths read it directly and call ``get_hub()`` only on AttributeError (no
#: hub yet): a Python call less than ``get_hub()`` on every wait.
thread_hub = _thread_local()

#: What ``get_hub`` makes a thread's hub with; None until the first hub, when
#: ``hubchoice`` reads NETTOOLS_HUB / EVENTLET_HUB.  ``hubchoice.use_hub`` sets it.
_make_hub: Callable[[], Any] | None = None


def set_hub_factory(factory: Callable[[], Any]) -> None:
    """Make threads' hubs with ``factory`` from now on, the calling thread's
    next one included (its current hub is dropped).  See ``hubchoice.use_hub``."""
    global _make_hub
    _make_hub = factory
    if getattr(thread_hub, "hub", None) is not None:
        del thread_hub.hub


def get_hub() -> Hub:
    """Return this OS thread's hub, creating it on first use."""
    try:
        return thread_hub.hub
    except AttributeError:
        pass
    global _make_hub
    if _make_hub is None:
        from .hubchoice import hub_from_environment  # it builds on Hub: imported late

        _make_hub = hub_from_environment()
    hub = thread_hub.hub = _make_hub()
    return hub


def current_hub() -> Hub | None:
    """This OS thread's hub if it has one (never creates one)."""
    return getattr(thread_hub, "hub", None)


def _reset_after_fork() -> None:
    # Greenthreads live in this process's memory: in the child they all go on,
    # with their timers and fd waits.  Only the kernel objects the child shares
    # with the parent -- the epoll instance, the wake-up eventfd, the signal
    # pipe -- must be the child's own (see EpollPoller).
    hub = getattr(thread_hub, "hub", None)
    if hub is not None:
        hub.renew_after_fork()


os.register_at_fork(after_in_child=_reset_after_fork)


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
    seconds.  (``Hub.wait_level`` on this thread's hub.)
    """
    if read == write:
        raise ValueError("trampoline needs exactly one of read=True or write=True")
    fileno = fileno_of(fd)
    get_hub().wait_level(fileno, READ if read else WRITE, timeout, timeout_exc)


def notify_close(fd: Any) -> None:
    """Wake greenthreads waiting on ``fd`` with ``IOClosed``; call before closing it."""
    get_hub().notify_close(fileno_of(fd))


def notify_opened(fd: Any) -> None:
    """Forget stale hub state for a newly opened ``fd`` number."""
    get_hub().notify_opened(fileno_of(fd))
