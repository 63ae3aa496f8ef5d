"""What wakes a hub from outside its own thread's greenthreads.

* Callbacks from other OS threads (and signal handlers):
  ``run_callback_threadsafe`` queues them and wakes the poller through its
  wake-up channel (an eventfd); the loop moves them to its ready queue when
  the poll reports that channel.
* Signals: ``wake_on_signals`` points ``signal.set_wakeup_fd`` at a pipe the
  poller watches, so a signal ends the hub's wait at once.
* ``ref``/``unref`` count what outside may still wake a waiter (thread jobs):
  while any is out, an empty hub waits rather than call a deadlock.

``OutsideWakeups`` holds this state for ``Hub`` (one of its base classes; the
poller and the ready queue it uses are the hub's).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from typing import Any

from .poller import replace_fd

__all__ = ["OutsideWakeups", "drain_fd"]


class OutsideWakeups:
    """The hub's wake-ups from other threads and from signals."""

    ready: Any  # the hub's
    poller: Any  # FdWaits'

    def __init__(self) -> None:
        #: Outstanding references that may wake the hub from outside (thread jobs).
        self.external_refs = 0
        self._tsq: deque[Callable[[], Any]] = deque()
        self._signal_fds: tuple[int, int] | None = None  # see wake_on_signals()

    def run_callback_threadsafe(self, callback: Callable[[], Any]) -> None:
        """Run ``callback()`` in the hub's thread; safe from any thread or signal handler."""
        self._tsq.append(callback)
        self.poller.wake()

    def wake_on_signals(self) -> None:
        """Make every signal wake this hub (main thread only; idempotent).

        Python runs a signal handler only between bytecodes.  A signal landing
        just before the hub blocks in its poller's ``poll`` would otherwise wait for
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
        self.poller.add_wakeup_fd(r)

    def ref(self) -> None:
        """Declare that something outside the hub may still wake a waiter."""
        self.external_refs += 1

    def unref(self) -> None:
        """Undo one ``ref()``."""
        self.external_refs -= 1

    def _drain_threadsafe(self) -> None:
        self.poller.clear_wake()  # first: a callback queued after this comes with a new wake-up
        tsq = self._tsq
        ready = self.ready
        while tsq:
            ready.append(tsq.popleft())

    def _close_signal_pipe(self) -> None:
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

    def _renew_signal_pipe(self) -> None:
        """In a forked child: a signal pipe of its own under the shared one's
        numbers (``set_wakeup_fd`` and the loop hold them)."""
        if self._signal_fds is not None:
            r, w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            replace_fd(self._signal_fds[0], r)
            replace_fd(self._signal_fds[1], w)
            self.poller.add_wakeup_fd(self._signal_fds[0])


def drain_fd(fd: int) -> None:
    """Read a non-blocking ``fd`` (a wake-up pipe) empty."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
