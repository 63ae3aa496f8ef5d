"""What ``threading.current_thread()`` answers in green code, as eventlet answers it.

* In a ``threading.Thread`` (green once patched): that ``Thread``.
* In a greenthread that ``spawn`` started: a ``GreenThreadView`` of it, named
  ``GreenThread-N``, one per greenthread, with the ``Thread`` methods a program
  calls on the current thread (``name``, ``ident``, ``is_alive``, ``daemon``,
  ``join`` ...).  ``join`` waits for the greenthread.
* Anywhere else (a ``spawn_n`` greenlet, a thread's main greenlet): the OS
  thread's own ``Thread`` object -- the main thread, or a thread an unpatched
  ``threading`` started (``patcher.original('threading')``) -- and only for an
  OS thread nobody registered, the standard module's dummy thread.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from greenlet import GreenletExit, getcurrent

from ..kernel.greenthread import GreenThread, current_greenthread
from ..kernel.timeout import Timeout
from ._thread import get_ident, real_get_ident

__all__ = ["GreenThreadView", "current_thread_function", "register_unpatched_threading"]

_counter = itertools.count(1)
#: One view per greenthread that asked, until it ends.
_views: dict[GreenThread, GreenThreadView] = {}
#: ``_active`` of unpatched threading modules: their threads are real OS threads.
_unpatched_actives: list[dict[int, Any]] = []


class GreenThreadView:
    """A greenthread, seen as a ``threading.Thread`` (eventlet's ``_GreenThread``)."""

    def __init__(self, gt: GreenThread) -> None:
        self._gt = gt
        #: The greenlet the greenthread runs on; ``ident`` is its id, as ``get_ident()``.
        self._g = getcurrent()
        self._name = f"GreenThread-{next(_counter)}"
        self.daemon = True

    @property
    def ident(self) -> int:
        return id(self._g)

    native_id = ident

    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, name: str) -> None:
        self._name = str(name)

    def get_name(self) -> str:
        return self._name

    def set_name(self, name: str) -> None:
        self.name = name

    getName = get_name  # noqa: N815 (threading's old names)
    setName = set_name  # noqa: N815

    def is_alive(self) -> bool:
        return not self._gt.dead

    isAlive = is_alive  # noqa: N815

    def is_daemon(self) -> bool:
        return self.daemon

    isDaemon = is_daemon  # noqa: N815

    def join(self, timeout: float | None = None) -> None:
        """Wait for the greenthread to end (at most ``timeout`` seconds)."""
        if self._gt is current_greenthread():
            raise RuntimeError("cannot join current thread")
        with Timeout(timeout, False):
            try:
                self._gt.wait()
            except (Exception, GreenletExit):
                pass  # as with a Thread: its failure is not the joiner's

    def __repr__(self) -> str:
        return f"<_GreenThread({self._name}, {self._gt!r})>"


def register_unpatched_threading(module: ModuleType) -> None:
    """Let ``current_thread()`` find threads an unpatched ``threading`` copy started."""
    _unpatched_actives.append(module._active)


def _view(gt: GreenThread) -> GreenThreadView:
    view = _views.get(gt)
    if view is None:
        view = _views[gt] = GreenThreadView(gt)
        gt.link(_views.pop)
    return view


def current_thread_function(module: ModuleType) -> Callable[[], Any]:
    """``current_thread`` for ``module`` (the green copy of threading, or the
    real one once patched), answering as described above."""
    active = module._active

    def current_thread() -> Any:
        thread = active.get(get_ident())
        if thread is not None:
            return thread
        gt = current_greenthread()
        if gt is not None:
            return _view(gt)
        real_ident = real_get_ident()
        for registry in (active, *_unpatched_actives):
            thread = registry.get(real_ident)
            if thread is not None:
                return thread
        return module._DummyThread()

    current_thread.__doc__ = "The current thread: a greenthread's view, or the OS thread's own."
    return current_thread
