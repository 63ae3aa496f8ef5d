"""Green ``threading``: a fresh copy of the standard module built on the green ``_thread``.

Almost nothing of threading is rewritten: threading.py is executed again with
``import _thread`` resolving to ``nettools.green._thread``, so ``Thread`` runs
as a greenthread and ``Lock``/``RLock``/``Condition``/``Semaphore``/``Event``/
``Timer``/``Barrier``/``local`` all park greenthreads.  Adjustments made to
the copy:

* ``Condition`` and ``Event`` are ``_parking``'s (subclasses of the standard
  ones whose waiters park as greenthreads rather than on a lock each), so
  ``Semaphore``, ``Barrier``, ``Thread.start`` and queues built on them wait faster;
* ``main_thread()`` is the real module's main thread object (identity kept);
* exception classes are the real module's (``except threading.BrokenBarrierError``);
* ``currentThread``/``activeCount`` are ``current_thread``/``active_count``,
  without the deprecation warning (also on the real module once patched);
* ``current_thread()`` answers as eventlet's: in a spawned greenthread a view
  of it named ``GreenThread-N``, in other greenlets the OS thread's own
  ``Thread`` (see ``threadview``); a dummy thread, made only for an OS thread
  nobody registered, is dropped when its greenlet goes away (the stdlib's
  dummies live forever before 3.13).

``monkey_patch`` copies only ``Condition`` and ``Event`` of these classes onto
the real module (subclasses of the real ones, so ``isinstance`` holds).  For the
rest it patches the real module's *primitives* (``__patched__``: how it starts
threads, makes locks, names threads) with the green ones, so the real
``Thread``, ``Semaphore``... classes -- including references taken before
patching, such as ``Thread`` subclasses -- become green, ``main_thread()`` and
``isinstance`` keep working, and the real ``threading._shutdown`` waits for
non-daemon green threads at exit as it does for real ones.  See ``_patch``.
"""

from __future__ import annotations

import os
import sys
import threading as _real_threading
import weakref
from types import ModuleType
from typing import Any

from greenlet import getcurrent

from . import _thread as _gthread
from ._importer import adopt, fresh_import
from ._parking import Condition as _GreenCondition
from ._parking import Event as _GreenEvent
from .threadview import current_thread_function

_copy = fresh_import("threading", {"_thread": _gthread})

# The names monkey_patch replaces on the real module, where they exist in this version.
__patched__ = [
    name
    for name in (
        # <= 3.12
        "_start_new_thread",
        "_set_sentinel",
        # 3.13+
        "_start_joinable_thread",
        "_ThreadHandle",
        "_make_thread_handle",
        "_thread_shutdown",
        "_LockType",
        "_thread_local_info",
        "_set_name",  # 3.14: would rename the OS thread after each greenthread
        # what Semaphore, Barrier, Thread and queues wait with (see _parking.py)
        "Condition",
        "Event",
        # all versions
        "_allocate_lock",
        "Lock",
        "_CRLock",
        "get_ident",
        "local",
        "stack_size",
    )
    if name in vars(_copy)
]
#: Deprecated camelCase names that programs of eventlet's era call in loops:
#: here (and on the real module once patched) the same functions, without a
#: DeprecationWarning on every call site.
_QUIET_ALIASES = {"currentThread": "current_thread", "activeCount": "active_count"}
__patched__ += [name for name in _QUIET_ALIASES if name in vars(_copy)]
# Made per module (see threadview): each answers from its own registry of threads.
__patched__.append("current_thread")


def _adopt_real_main_thread(mod: ModuleType) -> None:
    own = mod._main_thread
    real = _real_threading._main_thread
    locks = getattr(mod, "_shutdown_locks", None)
    if locks is not None:
        # The copy's own main thread holds a green lock nobody will release.
        locks.discard(getattr(own, "_tstate_lock", None))
    with mod._active_limbo_lock:
        if mod._active.get(own._ident) is own:
            del mod._active[own._ident]
        mod._active[real._ident] = real
    mod._main_thread = real


def _share_exceptions(mod: ModuleType) -> None:
    for name, value in vars(_real_threading).items():
        if isinstance(value, type) and issubclass(value, BaseException):
            setattr(mod, name, value)


def _cleaned_dummy_class(mod: ModuleType) -> type:
    """A ``_DummyThread`` subclass removed from ``_active`` when its greenlet dies."""
    base = mod._DummyThread

    class _DummyThread(base):  # type: ignore[valid-type, misc]
        def __init__(self) -> None:
            super().__init__()
            ident = self._ident
            me = weakref.ref(self)

            def drop(_: Any) -> None:
                active = mod._active
                if me() is not None and active.get(ident) is me():
                    active.pop(ident, None)

            self._nettools_greenlet_ref = weakref.ref(getcurrent(), drop)

    _DummyThread.__qualname__ = base.__qualname__
    _DummyThread.__module__ = base.__module__
    return _DummyThread


def _needs_dummy_cleanup(mod: ModuleType) -> bool:
    # 3.13 removes dummies through a thread-local, which is green once patched.
    return not hasattr(mod, "_DeleteDummyThreadOnDel")


#: What the standard module's after-fork handler takes from a thread it thinks
#: gone (<= 3.12); a green thread of the forking OS thread gets it back.
_FORK_STATE = ("_tstate_lock", "_is_stopped", "_ident")


def _keep_green_threads_across_fork(mod: ModuleType) -> None:
    """Make ``mod``'s threads of the forking OS thread survive ``fork``.

    The standard module assumes that only the thread calling fork survives it
    and marks every other one stopped.  But green threads live in the process's
    memory, and go on in the child (the hub keeps them; see
    ``nettools.kernel.hub``): those of the forking OS thread -- with that OS
    thread's own ``Thread``, the main thread say -- are put back after the
    standard handler ran.  Threads of other OS threads end, as there.
    """
    kept: dict[int, tuple[Any, dict[str, Any]]] = {}
    main: list[Any] = []

    def before() -> None:
        kept.clear()
        main[:] = [mod._main_thread]
        mine = _gthread.local_idents()
        for ident, thread in list(mod._active.items()):
            if ident in mine:
                state = {k: v for k, v in vars(thread).items() if k in _FORK_STATE}
                kept[ident] = (thread, state)

    def after_in_child() -> None:
        if not kept:
            return
        active = mod._active
        with mod._active_limbo_lock:
            for ident in [i for i in active if i not in kept]:
                del active[ident]  # a stand-in for a forking greenlet that was no Thread
            shutdown_locks = getattr(mod, "_shutdown_locks", None)
            for ident, (thread, state) in kept.items():
                vars(thread).update(state)
                active[ident] = thread
                lock = state.get("_tstate_lock")
                if shutdown_locks is not None and lock is not None and not thread.daemon:
                    shutdown_locks.add(lock)  # exit waits for it, as before the fork
            if main and main[0] in (thread for thread, _ in kept.values()):
                mod._main_thread = main[0]
        kept.clear()

    os.register_at_fork(before=before, after_in_child=after_in_child, after_in_parent=kept.clear)


_copy.current_thread = current_thread_function(_copy)
for _old, _new in _QUIET_ALIASES.items():
    if _old in vars(_copy):
        setattr(_copy, _old, getattr(_copy, _new))
_adopt_real_main_thread(_copy)
_share_exceptions(_copy)
_copy.Condition = _GreenCondition
_copy.Event = _GreenEvent
if _needs_dummy_cleanup(_copy):
    _copy._DummyThread = _cleaned_dummy_class(_copy)
_keep_green_threads_across_fork(_copy)

__all__ = adopt(globals(), _copy)


# ----------------------------------------------------------------- patching

_real_rlock_type = type(_real_threading._CRLock()) if _real_threading._CRLock else None


def _patch() -> None:
    """Make the real ``threading`` module green (called by ``monkey_patch``)."""
    real = sys.modules["threading"]
    real.current_thread = current_thread_function(real)
    for name in __patched__:
        if name in _QUIET_ALIASES:
            setattr(real, name, getattr(real, _QUIET_ALIASES[name]))
        elif name != "current_thread":
            setattr(real, name, vars(_copy)[name])
    if _needs_dummy_cleanup(real):
        real._DummyThread = _cleaned_dummy_class(real)
    _keep_green_threads_across_fork(real)
    _green_logging_locks()


def _green_logging_locks() -> None:
    """Swap the RLocks ``logging`` made at import (and its handlers') for green ones.

    They would otherwise let two greenthreads of one OS thread into a handler at
    once.  A lock that is held right now is left alone.
    """
    logging = sys.modules.get("logging")
    if logging is None or _real_rlock_type is None:
        return

    def fresh(lock: Any) -> Any:
        if type(lock) is _real_rlock_type and not lock._is_owned():
            return _copy.RLock()
        return lock

    if hasattr(logging, "_lock"):
        logging._lock = fresh(logging._lock)
    for ref in list(getattr(logging, "_handlerList", ())):
        handler = ref()
        if handler is not None and getattr(handler, "lock", None) is not None:
            handler.lock = fresh(handler.lock)
