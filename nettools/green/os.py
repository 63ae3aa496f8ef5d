"""Green ``os``: waits that park the greenthread instead of the OS thread.

* ``read``/``write`` on a *non-blocking* fd wait on the hub when the call would
  block (EAGAIN) and then retry.  On a *blocking* fd (a plain ``os.pipe()``, a
  tty) they first park until the fd is ready (a zero-timeout ``poll``), so the
  real call does not block the thread while other greenthreads could run;
  regular files are always ready and cost one ``poll`` more.  (A write larger
  than the room left in a blocking pipe still blocks until it fits: make the
  fd non-blocking for that.)
* ``waitpid``/``wait``/``wait3``/``wait4`` without ``WNOHANG`` park until the
  child changes state: on a pidfd (Linux) for one known child, otherwise by
  polling with ``WNOHANG`` at growing intervals (1 ms up to 50 ms).

Everything else is the real ``os``.
"""

from __future__ import annotations

import os as _os
from os import *  # noqa: F403 - a drop-in replacement re-exports everything
from typing import Any

from ._waits import READ, WRITE, ChildWaiter, in_hub, wait_fd, wait_ready

globals().update({k: v for k, v in vars(_os).items() if not k.startswith("__")})
__all__ = list(_os.__all__)
__patched__ = ["read", "write", "waitpid", "wait", "wait3", "wait4"]

_real_read = _os.read
_real_write = _os.write
_real_waitpid = _os.waitpid
_real_wait3 = _os.wait3
_real_wait4 = _os.wait4
_WNOHANG = _os.WNOHANG
# Stops and continues are not seen on a pidfd; with these flags, poll instead.
_STATE_FLAGS = getattr(_os, "WUNTRACED", 0) | getattr(_os, "WCONTINUED", 0)


def _park_if_blocking(fd: int, direction: int) -> None:
    """Park until a blocking ``fd`` is ready, so the real call that follows won't block."""
    try:
        if not _os.get_blocking(fd):
            return  # non-blocking: try first, wait on EAGAIN
    except OSError:
        return  # a bad fd: let the real call raise
    wait_ready(fd, direction)


def _transfer(call: Any, fd: int, arg: Any, direction: int) -> Any:
    """``call(fd, arg)``, parking first on a blocking fd and after each EAGAIN."""
    _park_if_blocking(fd, direction)
    while True:
        try:
            return call(fd, arg)
        except BlockingIOError:
            if in_hub():
                raise
            wait_fd(fd, direction)


def read(fd: int, n: int) -> bytes:
    """Read at most ``n`` bytes from ``fd``, parking the greenthread while none are ready."""
    return _transfer(_real_read, fd, n, READ)


def write(fd: int, data: Any) -> int:
    """Write ``data`` to ``fd``, parking the greenthread while it would block."""
    return _transfer(_real_write, fd, data, WRITE)


def _wait_for_child(pid: int, options: int, call: Any) -> Any:
    """``call(options)``; without ``WNOHANG``, park between ``WNOHANG`` calls until
    one reports a child."""
    if options & _WNOHANG or in_hub():
        return call(options)
    result = call(options | _WNOHANG)
    if result[0] != 0:
        return result
    with ChildWaiter(pid if pid > 0 and not options & _STATE_FLAGS else None) as waiter:
        while True:
            waiter.wait(None)
            result = call(options | _WNOHANG)
            if result[0] != 0:
                return result


def waitpid(pid: int, options: int) -> tuple[int, int]:
    """``os.waitpid``; without ``WNOHANG`` it parks the greenthread, not the thread."""
    return _wait_for_child(pid, options, lambda o: _real_waitpid(pid, o))


def wait() -> tuple[int, int]:
    """``os.wait``: wait for any child, parking the greenthread."""
    return waitpid(-1, 0)


def wait3(options: int) -> tuple[int, int, Any]:
    """``os.wait3``; without ``WNOHANG`` it parks the greenthread."""
    return _wait_for_child(-1, options, _real_wait3)


def wait4(pid: int, options: int) -> tuple[int, int, Any]:
    """``os.wait4``; without ``WNOHANG`` it parks the greenthread."""
    return _wait_for_child(pid, options, lambda o: _real_wait4(pid, o))
