"""Green ``_thread``: new "threads" are greenthreads, locks park greenthreads.

Identity: ``get_ident()`` is the real thread id in an OS thread's own (main)
greenlet -- so the main thread and threads started before patching keep their
ids -- and ``id(greenlet)`` in any other greenlet.  Both kinds are addresses of
live objects, so they never collide.

Locks (``LockType``) park the calling greenthread, yet stay correct when shared
with real OS threads (``tpool`` workers, threads started before patching,
``importlib``'s module locks once patched): the lock state is a real lock taken
without blocking, and a release with waiters hands the lock, still locked, to
the first of them through that waiter's own hub (thread-safe when the waiter
lives in another thread).  A waiter that timed out or was killed meanwhile
passes the lock on, so it is never lost.

Python 3.13's ``start_joinable_thread``/``_ThreadHandle`` are provided too, so
the ``threading`` copy built on this module works on every supported version.
"""

from __future__ import annotations

import _thread as _real
import signal as _signal
import sys
import traceback
from collections import deque
from collections.abc import Callable
from functools import partial
from time import monotonic as _monotonic
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from ..kernel.greenthread import kill
from ..kernel.hub import Hub, current_hub, discard, get_hub
from ..kernel.local import local as _green_local

# Re-export the real module first; everything that blocks or knows threads is
# overridden below.
globals().update({k: v for k, v in vars(_real).items() if not k.startswith("__")})
# Without an RLock here, the threading copy falls back to its pure-Python RLock,
# which is built on our LockType and get_ident.
globals().pop("RLock", None)
_local = _green_local

__patched__ = [
    "allocate_lock",
    "allocate",
    "LockType",
    "get_ident",
    "start_new_thread",
    "start_new",
    "stack_size",
    "_local",
    "_count",
    "interrupt_main",
]
if hasattr(_real, "start_joinable_thread"):
    __patched__.append("start_joinable_thread")

error = RuntimeError
TIMEOUT_MAX: float = _real.TIMEOUT_MAX
_real_get_ident = real_get_ident = _real.get_ident
_real_allocate = _real.allocate_lock
_real_count = _real._count  # OS threads started by the real module and still running
_real_interrupt_main = _real.interrupt_main


def get_ident() -> int:
    """The current greenthread's id (the real thread id in a thread's main greenlet)."""
    try:
        g = getcurrent()
    except RuntimeError:
        # Interpreter shutdown: greenlet refuses getcurrent() while logging and
        # weakref callbacks still take locks; only the main greenlet runs now.
        return _real_get_ident()
    if g.parent is None:
        return _real_get_ident()
    return id(g)


# ----------------------------------------------------------------------- locks


class _Waiter:
    """A greenthread parked in ``LockType.acquire``; woken from any thread."""

    __slots__ = ("g", "hub", "thread", "active", "granted", "lock")

    def __init__(self, lock: LockType, hub: Hub) -> None:
        self.g = getcurrent()
        self.hub = hub
        self.thread = _real_get_ident()
        self.active = True
        self.granted = False
        self.lock = lock

    def hand_over(self) -> bool:
        """Give the (still locked) lock to this waiter; False if it already left."""
        if not self.active:
            return False
        lock = self.lock
        if self.thread == _real_get_ident():
            self.hub.run_callback(self.resume)
        else:
            # Record the cross-thread use now: the releaser may wait again
            # before the new owner runs.
            lock._shared = True
            lock._owner = self.thread
            self.hub.run_callback_threadsafe(self.resume)
        return True

    def resume(self) -> None:
        """Runs in the waiter's hub."""
        if self.active:
            self.active = False
            self.granted = True
            self.g.switch()
        else:
            # It left (timeout, kill) while the lock was on its way: pass it on.
            self.lock._pass_on()

    def expire(self) -> None:
        if self.active:
            self.active = False
            self.g.switch()


class LockType:
    """A non-reentrant lock (``threading.Lock``) that parks greenthreads.

    A release with waiters hands the lock to the first of them (FIFO), so a
    greenthread that releases and re-acquires at once cannot starve the others.
    """

    __slots__ = ("_block", "_waiters", "_owner", "_shared", "__weakref__")

    def __init__(self) -> None:
        self._block = _real_allocate()  # locked while held, or while handed over
        self._waiters: deque[_Waiter] = deque()
        self._owner = 0  # real thread id of the last acquirer
        #: Used from more than one OS thread: a wait may then always be ended
        #: from outside this thread's hub, which must not call it a deadlock.
        self._shared = False

    def _took(self) -> None:
        me = _real_get_ident()
        if self._owner != me:
            if self._owner:
                self._shared = True
            self._owner = me

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        """Take the lock; False if not ``blocking`` or ``timeout`` seconds passed."""
        if timeout != -1:
            # Bad arguments raise even when the lock is free, as with the real lock.
            if not blocking:
                raise ValueError("can't specify a timeout for a non-blocking call")
            if timeout is not None and timeout < 0:
                raise ValueError("timeout value must be positive")
            if timeout is not None and timeout > TIMEOUT_MAX:
                raise OverflowError("timeout value is too large")
        if self._block.acquire(False):
            if self._owner != _real_get_ident():
                self._took()
            return True
        if not blocking:
            return False
        if timeout is None or timeout == -1:
            timeout = None
        elif timeout == 0:
            return False
        return self._acquire_slow(timeout)

    def _acquire_slow(self, timeout: float | None) -> bool:
        hub = get_hub()
        if getcurrent() is hub.greenlet:
            if self._owner == _real_get_ident():
                raise RuntimeError(
                    "cannot wait for a lock inside the hub: a greenthread of this "
                    "thread holds it; spawn a greenthread to do the locking"
                )
            # Held by another OS thread: block like the real lock would.
            got = self._block.acquire(True, -1 if timeout is None else timeout)
            if got:
                self._took()
            return got
        deadline = None if timeout is None else _monotonic() + timeout
        while True:
            waiter = _Waiter(self, hub)
            self._waiters.append(waiter)
            # A release between the first try and the append would be missed.
            if self._block.acquire(False):
                waiter.active = False
                discard(self._waiters, waiter)
                self._took()
                return True
            remaining = None if deadline is None else deadline - _monotonic()
            if remaining is not None and remaining <= 0:
                waiter.active = False
                discard(self._waiters, waiter)
                return False
            # Another OS thread may end this wait: tell the hub so.  Once threads
            # contend, any later waiter may queue behind one from elsewhere.  A
            # lock has no owner, so even one this thread holds may be released
            # by another OS thread while any runs (importlib's module locks use
            # a lock so, to wake a waiter): no deadlock can be called then.
            if self._owner != waiter.thread:
                self._shared = True
            external = self._shared or _real_count() > 0
            if external:
                hub.ref()
            timer = None if remaining is None else hub.schedule(remaining, waiter.expire)
            try:
                hub.switch()
            finally:
                if external:
                    hub.unref()
                if timer is not None:
                    timer.cancel()
                # If thrown out (kill, Timeout) while the lock was on its way,
                # resume() sees us inactive and passes the lock on.
                waiter.active = False
                discard(self._waiters, waiter)
            if waiter.granted:
                self._took()
                return True
            if deadline is not None and _monotonic() >= deadline:
                return False

    def release(self) -> None:
        """Release the lock (from any greenthread or thread), handing it to a waiter."""
        if not self._waiters:
            # The usual case, inlined from _pass_on; the real lock raises
            # RuntimeError("release unlocked lock") as we would.
            self._block.release()
            if not self._waiters or not self._block.acquire(False):
                return
        elif not self._block.locked():
            raise RuntimeError("release unlocked lock")
        self._pass_on()

    def _pass_on(self) -> None:
        """Hand the held lock to the first live waiter, or unlock it."""
        while True:
            waiters = self._waiters
            while waiters:
                try:
                    w = waiters.popleft()
                except IndexError:
                    break
                if w.hand_over():
                    return
            self._block.release()
            # A waiter in another thread may have queued after we looked and
            # tried the lock before we unlocked it: take it back and hand it over.
            if not self._waiters or not self._block.acquire(False):
                return

    def locked(self) -> bool:
        """True while some greenthread or thread holds the lock."""
        return self._block.locked()

    def _at_fork_reinit(self) -> None:
        self._block = _real_allocate()
        self._waiters.clear()
        self._owner = 0
        self._shared = False

    acquire_lock = acquire
    release_lock = release
    locked_lock = locked

    __enter__ = acquire  # no frame of its own: ``with lock`` is the hot path

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __repr__(self) -> str:
        state = "locked" if self._block.locked() else "unlocked"
        cls = type(self)
        return f"<{state} {cls.__module__}.{cls.__qualname__} object at {id(self):#x}>"


lock = LockType  # the type's public name on Python 3.13


# The type itself, not a function: like the builtin, it must not turn into a
# method when stored on a class (``locktype = _thread.allocate_lock``).
allocate_lock = LockType
allocate = allocate_lock


# -------------------------------------------------------------------- threads

#: greenlet -> the locks to release when it ends (``_set_sentinel``, <= 3.12).
_sentinels: dict[greenlet, list[LockType]] = {}
#: Handles of running non-daemon joinable threads (3.13's ``_shutdown``).
_non_daemon: set[_ThreadHandle] = set()
_running = 0
_stack_size = 0


class _ThreadHandle:
    """Python 3.13's handle on a started thread: ``join`` and ``is_done``."""

    __slots__ = ("ident", "_done", "_lock", "__weakref__")

    def __init__(self) -> None:
        self.ident: int | None = None
        self._done = False
        self._lock = LockType()
        self._lock.acquire()  # held until the thread ends

    def is_done(self) -> bool:
        return self._done

    def _set_done(self) -> None:
        if not self._done:
            self._done = True
            self._lock.release()

    def join(self, timeout: float | None = None) -> None:
        if self._done:
            return
        if self.ident == get_ident():
            raise RuntimeError("Cannot join current thread")
        t = -1 if timeout is None else max(timeout, 0)
        if self._lock.acquire(True, t):
            self._lock.release()

    def __repr__(self) -> str:
        return f"<_ThreadHandle object: ident={self.ident}>"


def _make_thread_handle(ident: int) -> _ThreadHandle:
    handle = _ThreadHandle()
    handle.ident = ident
    return handle


def _spawn(function: Callable, args: tuple, kwargs: dict | None, handle: Any) -> greenlet:
    global _running
    if not callable(function):
        raise TypeError("first arg must be callable")
    if not isinstance(args, tuple):
        raise TypeError("2nd arg must be a tuple")
    if kwargs is not None and not isinstance(kwargs, dict):
        raise TypeError("optional 3rd arg must be a dictionary")
    hub = get_hub()
    g = greenlet(_bootstrap, hub.greenlet)
    _sentinels[g] = []
    if handle is not None:
        if not isinstance(handle, _ThreadHandle):
            # A real 3.13 handle (its Thread was created before patching) cannot
            # track a greenthread: refuse rather than never finish a join.
            raise RuntimeError("thread handle made before monkey patching; create the Thread anew")
        handle.ident = id(g)
    _running += 1
    hub.run_callback(partial(g.switch, function, args, kwargs or {}, handle))
    return g


def _bootstrap(function: Callable, args: tuple, kwargs: dict, handle: Any) -> None:
    global _running
    try:
        function(*args, **kwargs)
    except (SystemExit, GreenletExit):
        pass
    except BaseException as exc:
        _report_unhandled(function, exc)
    finally:
        _running -= 1
        for lk in _sentinels.pop(getcurrent(), ()):
            if lk.locked():
                lk.release()
        if handle is not None:
            _non_daemon.discard(handle)
            handle._set_done()


def _report_unhandled(function: Callable, exc: BaseException) -> None:
    # What the real _thread prints; sys.unraisablehook needs an argument type
    # that Python code cannot build, so a custom hook gets a look-alike.
    hook = sys.unraisablehook
    if hook is not sys.__unraisablehook__:
        try:
            hook(_Unraisable(exc, function))
            return
        except Exception:
            pass
    print(f"Exception ignored in thread started by: {function!r}", file=sys.stderr)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)


class _Unraisable:
    def __init__(self, exc: BaseException, obj: Any) -> None:
        self.exc_type = type(exc)
        self.exc_value = exc
        self.exc_traceback = exc.__traceback__
        self.err_msg = "Exception ignored in thread started by"
        self.object = obj


def start_new_thread(function: Callable, args: tuple, kwargs: dict | None = None) -> int:
    """Run ``function(*args, **kwargs)`` in a new greenthread; return its ident."""
    return id(_spawn(function, args, kwargs, None))


start_new = start_new_thread


def start_joinable_thread(
    function: Callable, handle: _ThreadHandle | None = None, daemon: bool = True
) -> _ThreadHandle:
    """Python 3.13: start ``function()`` in a greenthread and return a handle to join it."""
    if handle is None:
        handle = _ThreadHandle()
    _spawn(function, (), None, handle)
    if not daemon:
        _non_daemon.add(handle)
    return handle


def _shutdown() -> None:
    """Python 3.13: wait for the non-daemon green threads, then the real ones."""
    me = get_ident()
    while True:
        pending = [h for h in _non_daemon if h.ident != me and not h.is_done()]
        if not pending:
            break
        for h in pending:
            h.join()
    real_shutdown = getattr(_real, "_shutdown", None)
    if real_shutdown is not None:
        real_shutdown()


def _set_sentinel() -> LockType:
    """Python <= 3.12: a lock released when the calling greenthread ends."""
    lk = LockType()
    locks = _sentinels.get(getcurrent())
    if locks is not None:
        locks.append(lk)
    return lk


def _count() -> int:
    """Number of green threads started by this module that are still running."""
    return _running


def local_idents() -> set[int]:
    """The idents of what runs in this OS thread: its own (real) id, and those
    of the green threads started in it that have not ended."""
    idents = {_real_get_ident()}
    hub = current_hub()  # none yet: no green thread has run here
    if hub is not None:
        idents.update(id(g) for g in _sentinels if g.parent is hub.greenlet and not g.dead)
    return idents


def stack_size(size: int = 0) -> int:
    """Greenlets size their own stacks: the value is only recorded and returned."""
    global _stack_size
    if size != 0 and size < 32768:
        raise ValueError(f"size not valid: {size} bytes")
    old, _stack_size = _stack_size, size
    return old


def interrupt_main(signum: int = _signal.SIGINT) -> None:
    """Simulate ``signum`` arriving in the main thread, as ``_thread.interrupt_main``.

    Called from a green thread of the main OS thread, the real function would
    have Python run the signal's handler in the caller, the next code to run
    in that thread.  Here what the handler raises (``KeyboardInterrupt``, for
    SIGINT's default handler) is raised in the main greenlet, wherever it
    waits, as it would be in a main thread interrupted by the signal.  As with
    the real one, a signal with no Python handler (SIG_DFL, SIG_IGN) does nothing.
    """
    me = getcurrent()
    if me.parent is None:
        return _real_interrupt_main(signum)  # the main greenlet itself: at once
    if not 1 <= signum < _signal.NSIG:
        raise ValueError("signal number out of range")
    handler = _signal.getsignal(signum)
    if not callable(handler):
        return
    try:
        _signal.signal(signum, handler)  # as it was; raises outside the main thread
    except ValueError:
        return _real_interrupt_main(signum)
    main = me
    while main.parent is not None:
        main = main.parent
    try:
        handler(signum, None)
    except BaseException as exc:
        kill(main, exc)  # raised where the main greenlet waits; we go on after it


def set_name(name: str) -> None:
    """Python 3.14 names the OS thread; greenthreads share it, so do nothing."""

