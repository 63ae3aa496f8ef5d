"""Timeouts that raise inside the greenthread that set them.

``Timeout`` derives from ``BaseException``, not ``Exception``, as in eventlet
and gevent.  The reason: a timeout must be able to cut through code that
catches and swallows ordinary errors (``except Exception: log and retry``) --
otherwise a timeout around such a loop could never end it.  The price is that
``except Exception`` does not catch it either; catch it by name::

    try:
        with Timeout(5):
            fetch()
    except Timeout:
        handle_slow_fetch()

or pass your own exception, which then is what gets raised::

    with Timeout(5, TimeoutError("fetch took too long")):
        fetch()

``with Timeout(5, False):`` silences the timeout: the block is simply left.
Because a ``Timeout`` is a ``BaseException``, cleanup belongs in ``finally``
blocks or context managers, never only in ``except Exception``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from greenlet import getcurrent

from .fdwait import FdWaits
from .hub import Timer, get_hub

__all__ = ["Timeout", "with_timeout", "is_timeout", "wrap_is_timeout"]

_NONE = object()


class Timeout(BaseException):
    """Raise ``exception`` (default: this ``Timeout``) in the current greenthread
    after ``seconds``.  ``seconds=None`` never fires.

    The timer starts at once.  Use it as a context manager, or call ``cancel()``
    when the guarded work is done.
    """

    def __init__(self, seconds: float | None = None, exception: Any = None) -> None:
        super().__init__(seconds, exception)
        self.seconds = seconds
        self.exception = exception
        self.timer: Timer | None = None
        self.start()

    def start(self) -> Timeout:
        """(Re)start the timer; returns self."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.seconds is None:
            return self
        if self.exception is None or isinstance(self.exception, bool):
            exc = self  # True and False both raise this Timeout; False is then silenced
        elif isinstance(self.exception, type):
            exc = self.exception()
        else:
            exc = self.exception
        self.timer = get_hub().schedule(self.seconds, _fire, getcurrent(), exc)
        return self

    @property
    def pending(self) -> bool:
        """True while the timer is running (neither fired nor cancelled)."""
        return self.timer is not None and self.timer.active

    def cancel(self) -> None:
        """Stop the timer if it has not fired yet."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def __enter__(self) -> Timeout:
        if not self.pending:
            self.start()
        return self

    def __exit__(self, typ: Any, value: Any, tb: Any) -> bool:
        self.cancel()
        return value is self and self.exception is False

    def __repr__(self) -> str:
        extra = "" if self.exception is None else f" exception={self.exception!r}"
        state = " pending" if self.pending else ""
        return f"<Timeout at {id(self):#x} seconds={self.seconds}{extra}{state}>"

    def __str__(self) -> str:
        if self.seconds is None:
            return ""
        unit = "second" if self.seconds == 1 else "seconds"
        if self.exception is None or isinstance(self.exception, bool):
            return f"{self.seconds} {unit}"
        return f"{self.seconds} {unit} ({self.exception})"

    #: Marks timeout errors (see ``is_timeout``); a read-only True, as in eventlet.
    is_timeout = property(lambda self: True)


# The hub sits below this module and cannot import it: tell its fd waits what
# to raise when a caller sets a timeout but names no exception.
FdWaits.default_timeout_exc = Timeout


def _fire(g: Any, exc: BaseException) -> None:
    if not g.dead:
        g.throw(exc)


def with_timeout(seconds: float | None, function: Callable, *args: Any, **kwds: Any) -> Any:
    """Call ``function(*args, **kwds)``; raise ``Timeout`` if it takes over ``seconds``.

    With ``timeout_value=X`` among the keywords, return X on timeout instead.
    """
    timeout_value = kwds.pop("timeout_value", _NONE)
    timeout = Timeout(seconds)
    try:
        return function(*args, **kwds)
    except Timeout as ex:
        if ex is timeout and timeout_value is not _NONE:
            return timeout_value
        raise
    finally:
        timeout.cancel()


def is_timeout(obj: Any) -> bool:
    """True for ``Timeout``, the built-in ``TimeoutError`` (``socket.timeout``)
    and any exception whose ``is_timeout`` attribute is true (see
    ``wrap_is_timeout``)."""
    attr = getattr(obj, "is_timeout", False)
    if callable(attr):
        attr = attr()
    return bool(attr) or isinstance(obj, TimeoutError)


def wrap_is_timeout(base: Any) -> Any:
    """Mark what ``base`` makes as a timeout error, for ``is_timeout``.

    A class gets a read-only ``is_timeout`` property that is True, and is
    returned; any other callable is wrapped so that the object each call returns
    gets ``is_timeout = True``.
    """
    if isinstance(base, type):
        base.is_timeout = property(lambda self: True)
        return base

    @functools.wraps(base)
    def marked(*args: Any, **kwargs: Any) -> Any:
        made = base(*args, **kwargs)
        made.is_timeout = True
        return made

    return marked
