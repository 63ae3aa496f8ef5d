"""Greenthreads: spawn, wait for, link to and kill cooperative threads.

A ``GreenThread`` is a handle on one call of a function; the call runs on a
*worker* greenlet whose parent is the hub.

Why handles and workers: on CPython 3.11+ starting a new greenlet costs an
mmap/munmap pair (each greenlet gets its own frame data stack), which is most
of what ``spawn`` costs.  So a worker whose call finished *without ever waiting*
runs the next spawned call instead of dying -- but only if nothing can tell:
no strong or weak reference to the worker was taken during the call (checked
with the reference counts, which are exact when the call never left the
worker), and its ``contextvars`` context is reset.  A call that waited, or
that kept ``getcurrent()`` anywhere, retires its worker, exactly as a fresh
greenlet per spawn would.

Inside a spawned function ``getcurrent()`` returns the worker greenlet;
``current_greenthread()`` returns the ``GreenThread`` handle.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from sys import getrefcount
from typing import Any
from weakref import getweakrefcount

from greenlet import GreenletExit, getcurrent, greenlet

from .hub import SYSTEM_EXCEPTIONS, discard, get_hub

__all__ = [
    "GreenThread",
    "spawn",
    "spawn_n",
    "spawn_after",
    "spawn_after_local",
    "sleep",
    "kill",
    "getcurrent",
    "current_greenthread",
    "running_greenthreads",
    "GreenletExit",
    "log_every_error",
]

log = logging.getLogger("nettools.greenthread")

_PENDING, _RUNNING, _DONE = 0, 1, 2

#: Idle workers kept per hub (each holds a small saved stack and a 16 KiB frame chunk).
MAX_IDLE_WORKERS = 64


def sleep(seconds: float = 0) -> None:
    """Yield to other greenthreads for ``seconds`` (``0``: let every ready one run once)."""
    hub = get_hub()
    if seconds <= 0:
        hub.yield_ready()
        return
    cur = getcurrent()
    if cur is hub.greenlet:
        raise RuntimeError("sleep() called from inside the hub; spawn a greenthread instead")
    timer = hub.schedule(seconds, cur.switch)
    try:
        hub.switch()
    finally:
        timer.cancel()


class GreenThread:
    """One spawned call: ``wait()`` for its result, ``link()`` to it, ``kill()`` it.

    Returned by ``spawn``; not meant to be instantiated directly.
    """

    __slots__ = (
        "_fn",
        "_args",
        "_kwargs",
        "_state",
        "_result",
        "_exc",
        "_waiters",
        "_links",
        "_greenlet",
        "__weakref__",
    )

    # Class attributes rather than slots: only spawn_n's and spawn_after's
    # greenthreads (subclasses below) differ, and every slot is 8 B on each
    # running call (a server has one per connection).
    #: Whether an exception ending the call is logged rather than kept for ``wait()``.
    _log_errors = False
    #: The timer that starts a ``spawn_after`` call.
    _start_timer: Any = None

    def __init__(self, fn: Callable, args: tuple = (), kwargs: dict | None = None) -> None:
        self._fn = fn
        self._args = args
        # None rather than an empty dict: a running call keeps this until it returns.
        self._kwargs = kwargs or None
        self._state = _PENDING
        self._result: Any = None
        self._exc: BaseException | None = None
        self._waiters: deque | None = None
        #: One link as its (func, args, kwargs) tuple -- or as the bare function when
        #: it has no curried arguments --, several in a list (most greenthreads have
        #: one link, their pool's: no list and no tuple kept for it).
        self._links: Any = None
        self._greenlet: greenlet | None = None

    # -------------------------------------------------------------- running

    def _start(self) -> None:
        """Runs on the hub: give the call a worker (an idle one if possible)."""
        if self._state is not _PENDING:
            return  # killed before it started
        hub = get_hub()
        idle = hub.idle_workers
        if idle:
            idle.pop().switch(self)
            return
        w = _Worker(_worker, hub.greenlet)
        hub.workers += 1  # off the reuse path: a new greenlet costs far more
        # Handed over in an attribute, not as an argument of the first switch: a
        # greenlet keeps its first switch's arguments for as long as it lives.
        w.greenthread = self
        w.switch()

    def main(self, function: Callable, args: tuple, kwargs: dict) -> None:
        """Run ``function`` in the current greenlet and record the outcome."""
        self._fn, self._args, self._kwargs = function, args, kwargs
        self._run(getcurrent())

    def _run(self, g: greenlet) -> None:
        self._state = _RUNNING
        self._greenlet = g
        # Not kept in a local: an exception stored during the call (a framework
        # keeping a traceback) keeps this frame alive, and its locals with it,
        # which would count as a reference to the worker and retire it.
        g = None
        fn, args, kwargs = self._fn, self._args, self._kwargs
        self._fn = self._args = self._kwargs = None
        try:
            # CPython 3.11 runs fn(*args) in a nested C-level eval loop, whose
            # C stack every suspended greenthread keeps a copy of; a plain call
            # with a fixed argument count stays in the same loop (~0.7 KiB less
            # per idle connection).  The arguments tuple is dropped before the
            # call, which may last as long as a connection.
            n = -1 if kwargs else len(args)
            if n == 2:
                a, b = args
                args = None
                result = fn(a, b)
            elif n == 1:
                (a,) = args
                args = None
                result = fn(a)
            elif n == 0:
                result = fn()
            elif n == 3:
                a, b, c = args
                args = None
                result = fn(a, b, c)
            else:
                result = fn(*args, **(kwargs or {}))
        except SYSTEM_EXCEPTIONS:
            self._finish(None, GreenletExit("interrupted"))
            raise
        except BaseException as exc:
            if (self._log_errors or _log_every_error) and not isinstance(exc, GreenletExit):
                log.exception("unhandled error in greenthread running %r", fn)
            self._finish(None, exc)
        else:
            self._finish(result, None)

    def _finish(self, result: Any, exc: BaseException | None) -> None:
        self._state = _DONE
        self._greenlet = None
        self._result = result
        self._exc = exc
        if self._waiters:
            get_hub().run_callback(self._wake_waiters)
        links = self._links
        if links is not None:
            self._links = None
            if type(links) is tuple:
                links = (links,)
            elif type(links) is not list:
                links = ((links, (), None),)
            for fn, args, kwargs in links:
                try:
                    if kwargs is None:
                        fn(self, *args)
                    else:
                        fn(self, *args, **kwargs)
                except SYSTEM_EXCEPTIONS:
                    raise
                except BaseException:
                    log.exception("error in link %r of %r", fn, self)

    def _wake_waiters(self) -> None:
        waiters = self._waiters
        while waiters:
            waiters.popleft().switch()

    # ------------------------------------------------------------ public API

    @property
    def dead(self) -> bool:
        """True once the call has returned, raised or been killed."""
        return self._state is _DONE

    def __bool__(self) -> bool:
        """True while the call is running (started and not finished), as for greenlets."""
        return self._state is _RUNNING

    @property
    def greenlet(self) -> greenlet | None:
        """The greenlet running the call right now, or None."""
        return self._greenlet

    def wait(self) -> Any:
        """Return the call's result, or raise its exception, waiting if needed."""
        if self._state is not _DONE:
            if self._greenlet is getcurrent():
                raise RuntimeError("a greenthread cannot wait for itself")
            if self._waiters is None:
                self._waiters = deque()
            get_hub().park(self._waiters)
        if self._exc is not None:
            raise self._exc
        return self._result

    def link(self, func: Callable, *curried_args: Any, **curried_kwargs: Any) -> None:
        """Call ``func(gt, *curried_args, **curried_kwargs)`` when the call ends.

        Called at once if it has already ended.
        """
        if self._state is _DONE:
            func(self, *curried_args, **curried_kwargs)
            return
        # No tuple or empty dict kept per link: a pool links every greenthread it runs.
        links = self._links
        if links is None:
            if curried_args or curried_kwargs:
                self._links = (func, curried_args, curried_kwargs or None)
            else:
                self._links = func
            return
        entry = (func, curried_args, curried_kwargs or None)
        if type(links) is list:
            links.append(entry)
        else:
            self._links = [_link_entry(links), entry]

    def unlink(self, func: Callable, *curried_args: Any, **curried_kwargs: Any) -> bool:
        """Remove a link added with the same arguments; True if one was removed."""
        links = self._links
        entry = (func, curried_args, curried_kwargs or None)
        if links is None:
            return False
        if type(links) is not list:
            if _link_entry(links) != entry:
                return False
            self._links = None
            return True
        try:
            links.remove(entry)
        except ValueError:
            return False
        return True

    def kill(self, *throw_args: Any) -> None:
        """Raise ``GreenletExit`` (or ``throw_args``) in the call; the caller resumes once
        it has been handled.  A call that never started ends without running."""
        kill(self, *throw_args)

    def cancel(self, *throw_args: Any) -> None:
        """Kill the call only if it has not started yet."""
        if self._state is _PENDING:
            kill(self, *throw_args)

    def switch(self, *args: Any, **kwargs: Any) -> Any:
        """Switch to the running call's greenlet (low level)."""
        if self._greenlet is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._greenlet.switch(*args, **kwargs)

    def throw(self, *args: Any) -> Any:
        """Raise an exception in the running call's greenlet (low level; prefer kill)."""
        if self._greenlet is None:
            raise RuntimeError(f"{self!r} is not running")
        return self._greenlet.throw(*args)

    def __repr__(self) -> str:
        state = ("pending", "running", "dead")[self._state]
        return f"<GreenThread {state} at {id(self):#x}>"


class _LoggedGreenThread(GreenThread):
    """A ``spawn_n`` call: an exception ending it is logged."""

    __slots__ = ()
    _log_errors = True


class _DelayedGreenThread(GreenThread):
    """A ``spawn_after`` call: a timer starts it (``kill``/``cancel`` cancel the timer)."""

    __slots__ = ("_start_timer",)


class _Worker(greenlet):
    """A worker greenlet; ``greenthread`` is the call it runs.  In a slot: the
    greenlet's own dict stays empty, as small as a dict gets (a parked
    greenthread keeps its worker, and a server may have thousands parked)."""

    __slots__ = ("greenthread",)


def _link_entry(links: Any) -> tuple:
    """A single link as its (func, args, kwargs) tuple, however it is stored."""
    return links if type(links) is tuple else (links, (), None)


def _worker() -> None:
    """A worker greenlet's body: run calls until one waits or leaks the worker.
    Its first call comes in its ``greenthread`` attribute, the next ones by switch."""
    cur = getcurrent()
    gt = cur.greenthread
    hub = get_hub()
    idle = hub.idle_workers
    hub_greenlet = hub.greenlet
    try:
        while True:
            cur.greenthread = gt
            switches = hub.switches
            refs = getrefcount(cur)
            gt._run(cur)
            gt = None
            cur.greenthread = None
            if get_hub() is not hub:
                return  # forked during the call: this worker belongs to the parent's hub
            if (
                hub.switches != switches
                or getrefcount(cur) != refs
                or getweakrefcount(cur)
                or cur.__dict__  # the call set attributes on its greenlet
                or len(idle) >= MAX_IDLE_WORKERS
            ):
                return  # retire: someone may still know this greenlet
            if cur.gr_context is not None:
                cur.gr_context = None
            idle.append(cur)
            gt = hub_greenlet.switch()
    finally:
        hub.workers -= 1


def running_greenthreads(hub: Any = None) -> int:
    """How many spawned calls are running (started, not finished) on ``hub``
    (default: this thread's): its live workers less the idle ones."""
    hub = hub if hub is not None else get_hub()
    return hub.workers - len(hub.idle_workers)


def current_greenthread() -> GreenThread | None:
    """The ``GreenThread`` whose call is running now (None outside spawned calls)."""
    return getattr(getcurrent(), "greenthread", None)


def spawn(func: Callable, *args: Any, **kwargs: Any) -> GreenThread:
    """Run ``func(*args, **kwargs)`` in a new greenthread; returns its ``GreenThread``.

    It starts on the hub's next turn.  Its exception, if any, is raised by ``wait()``.
    """
    gt = GreenThread(func, args, kwargs)
    get_hub().ready.append(gt._start)
    return gt


#: Log the error of every greenthread that ends with one, not only of ``spawn_n``
#: ones (whose errors nobody can ``wait()`` for); see ``log_every_error``.
_log_every_error = False


def log_every_error(state: bool) -> None:
    """Also log the error of a ``spawn`` greenthread that ends with one (it is
    still raised by its ``wait()``), as eventlet prints every greenthread's
    error while ``debug.hub_exceptions`` is on."""
    global _log_every_error
    _log_every_error = bool(state)


def spawn_n(func: Callable, *args: Any, **kwargs: Any) -> GreenThread:
    """Run ``func`` in a new greenthread whose errors are logged rather than kept for
    ``wait()`` (for fire-and-forget work)."""
    gt = _LoggedGreenThread(func, args, kwargs)
    get_hub().ready.append(gt._start)
    return gt


def spawn_after(seconds: float, func: Callable, *args: Any, **kwargs: Any) -> GreenThread:
    """Like ``spawn``, but start after ``seconds``.  ``cancel()`` it to stop it starting."""
    gt = _DelayedGreenThread(func, args, kwargs)
    gt._start_timer = get_hub().schedule(seconds, gt._start)
    return gt


def spawn_after_local(seconds: float, func: Callable, *args: Any, **kwargs: Any) -> GreenThread:
    """Like ``spawn_after``, but it never starts if the calling greenthread has died by then."""
    gt = _DelayedGreenThread(func, args, kwargs)
    gt._start_timer = get_hub().schedule_local(seconds, gt._start)
    return gt


def kill(g: GreenThread | greenlet, *throw_args: Any) -> None:
    """Raise ``GreenletExit`` (or the given exception) in greenthread ``g``.

    The caller resumes on the hub's next turn, after ``g`` has handled it.
    A greenthread that has not started yet ends without ever running.
    """
    exc = _exception(throw_args)
    if isinstance(g, GreenThread):
        if g._state is _PENDING:
            if g._start_timer is not None:
                g._start_timer.cancel()
            g._fn = g._args = g._kwargs = None
            g._finish(None, exc)
            return
        if g._greenlet is None:
            return  # finished
        g = g._greenlet
    if g.dead:
        return
    cur = getcurrent()
    if cur is g:
        raise exc
    hub = get_hub()
    hub.switches += 1  # the caller leaves its worker without a hub wait
    if not g:
        exc = GreenletExit()  # never started: throwing just marks it dead
    if cur is hub.greenlet:
        g.throw(exc)
        return
    # Throwing switches away from us, and g hands control to the hub, not back
    # to us: queue our own wake-up first.
    sw = cur.switch
    hub.ready.append(sw)
    try:
        g.throw(exc)
    except BaseException:
        discard(hub.ready, sw)
        raise


def _exception(throw_args: tuple) -> BaseException:
    if not throw_args:
        return GreenletExit()
    typ = throw_args[0]
    if isinstance(typ, BaseException):
        return typ
    value = throw_args[1] if len(throw_args) > 1 else None
    if isinstance(value, BaseException):
        return value
    exc = typ() if value is None else typ(value)
    if len(throw_args) > 2 and throw_args[2] is not None:
        exc = exc.with_traceback(throw_args[2])
    return exc

