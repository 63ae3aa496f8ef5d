"""Green ``subprocess``: waiting for children and talking to them park the greenthread.

This is a fresh copy of the standard module whose ``select``, ``selectors``,
``os``, ``time`` and ``threading`` are the green ones, so ``communicate`` (its
selector loop) and timed waits (their sleeps) are green as written.  On top:

* pipes (``stdin``/``stdout``/``stderr=PIPE``) are wrapped in file objects
  whose reads and writes park the greenthread until poll() says the fd is
  ready (the fds stay blocking, as a child sharing them expects; see ``_io``);
* ``Popen.wait`` parks on a pidfd where Linux offers one (polling ``waitpid``
  with growing sleeps otherwise), and raises ``TimeoutExpired`` on timeout;
* the exception classes and ``CompletedProcess`` are the standard module's.

``run``, ``call``, ``check_call``, ``check_output``, ``getoutput`` and
``getstatusoutput`` come from the copy and therefore use the green ``Popen``.
"""

from __future__ import annotations

import io as _io
import subprocess as _real_subprocess
from time import monotonic as _monotonic
from types import ModuleType

from . import os as _gos
from . import select as _gselect
from . import selectors as _gselectors
from . import threading as _gthreading
from . import time as _gtime
from ._importer import adopt, fresh_import
from ._io import open_pipe
from ._waits import ChildWaiter, in_hub

_copy = fresh_import(
    "subprocess",
    {
        "os": _gos,
        "select": _gselect,
        "selectors": _gselectors,
        "threading": _gthreading,
        "time": _gtime,
    },
)

# Exceptions and result objects must be the ones callers catch and check.
for _name, _value in vars(_real_subprocess).items():
    if isinstance(_value, type) and (
        issubclass(_value, BaseException) or _value is _real_subprocess.CompletedProcess
    ):
        setattr(_copy, _name, _value)

# One registry of unreaped children (Popen.__del__ adds, _cleanup reaps), shared
# with the standard module: subprocess._active is where callers look for them.
_copy._active = _real_subprocess._active

# Popen.__init__ opens its pipe ends with io.open: give it green file objects.
_green_io = ModuleType("io")
_green_io.__dict__.update({k: v for k, v in vars(_io).items() if not k.startswith("__")})
_green_io.open = open_pipe
_copy.io = _green_io


class Popen(_copy.Popen):
    __doc__ = _real_subprocess.Popen.__doc__

    def _wait(self, timeout: float | None) -> int:
        """Park until the child exits; ``TimeoutExpired`` after ``timeout`` seconds."""
        if self.returncode is not None:
            return self.returncode
        if in_hub():
            return super()._wait(timeout)
        deadline = None if timeout is None else _monotonic() + timeout
        # Another greenthread may be waiting for the same child.
        if not self._waitpid_lock.acquire(True, -1 if timeout is None else max(timeout, 0)):
            raise _real_subprocess.TimeoutExpired(self.args, timeout)
        try:
            with ChildWaiter(self.pid) as waiter:
                while self.returncode is None:
                    pid, sts = self._try_wait(_gos.WNOHANG)
                    if pid == self.pid:
                        self._handle_exitstatus(sts)
                        break
                    remaining = None if deadline is None else deadline - _monotonic()
                    if remaining is not None and remaining <= 0:
                        raise _real_subprocess.TimeoutExpired(self.args, timeout)
                    waiter.wait(remaining)
        finally:
            self._waitpid_lock.release()
        return self.returncode


_copy.Popen = Popen

__all__ = adopt(globals(), _copy, skip=("Popen",))
__patched__ = [
    "Popen",
    "run",
    "call",
    "check_call",
    "check_output",
    "getoutput",
    "getstatusoutput",
]
del _name, _value
