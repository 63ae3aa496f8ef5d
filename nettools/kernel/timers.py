"""The hub's timers: ``Timer``, a call scheduled for later, and ``TimerHeap``,
the heap of them each hub keeps (a base class of ``Hub``, whose loop fires
them as they fall due; see the opening essay of ``hub.py``).

The heap holds ``(deadline, seq, Timer)`` entries; ``seq`` keeps timers due at
the same moment in the order they were scheduled.  Most timers are timeouts
cancelled before they fire, so cancelling is cheap: the timer is marked, and
its entry stays in the heap until its deadline -- unless it is the heap's last
leaf (a timeout set and cancelled between two hub turns), which goes at once.
The heap is compacted when it is big and cancelled entries make half of it.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable
from itertools import count
from typing import Any

from greenlet import getcurrent

__all__ = ["Timer", "LocalTimer", "TimerHeap"]


class Timer:
    """A scheduled call; ``cancel()`` it to drop it.  Created by ``Hub.schedule``."""

    __slots__ = ("deadline", "callback", "args", "hub", "active")

    def __init__(self, hub: TimerHeap, deadline: float, callback: Callable, args: tuple) -> None:
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
            # It may stay in the heap until its deadline; drop what it holds now.
            self.args = ()
            self.hub._timer_cancelled(self)

    def __repr__(self) -> str:
        state = "pending" if self.active else "done"
        due = self.deadline - time.monotonic()
        return f"<Timer {state} in {due:.3f}s {self.callback!r}{self.args!r}>"


class LocalTimer(Timer):
    """A timer that does nothing if the greenthread that scheduled it has died."""

    __slots__ = ("owner",)


class TimerHeap:
    """The timer half of the hub: scheduling and cancelling.  The hub's loop
    pops the due entries, and counts down ``_ncancelled`` for each cancelled
    one it pops."""

    #: Compact the timer heap once it holds more than this many entries and at
    #: least half of them are cancelled (eventlet's rule: a small heap is left
    #: alone, a big one never holds more dead entries than live ones).
    timer_compact_threshold = 1000

    def __init__(self) -> None:
        #: The heap of ``(deadline, seq, Timer)``.
        self.timers: list[tuple[float, int, Timer]] = []
        self._ncancelled = 0
        self._seq = count()

    def schedule(self, seconds: float, callback: Callable, *args: Any) -> Timer:
        """Call ``callback(*args)`` from the hub after ``seconds``."""
        t = Timer(self, time.monotonic() + seconds, callback, args)
        heapq.heappush(self.timers, (t.deadline, next(self._seq), t))
        return t

    def schedule_local(self, seconds: float, callback: Callable, *args: Any) -> Timer:
        """Like ``schedule``, but skipped if the calling greenthread has died by then."""
        t = LocalTimer(self, time.monotonic() + seconds, callback, args)
        t.owner = getcurrent()
        heapq.heappush(self.timers, (t.deadline, next(self._seq), t))
        return t

    # eventlet's names
    schedule_call_global = schedule
    schedule_call_local = schedule_local

    def _timer_cancelled(self, timer: Timer) -> None:
        timers = self.timers
        if timers and timers[-1][2] is timer:
            # The newest entry of the heap's list is a leaf (the common case of a
            # timeout set and cancelled before the hub ran): removing the last
            # element keeps the heap a heap, so it goes now, not at its deadline.
            timers.pop()
            return
        self._ncancelled += 1
        size = len(timers)
        if size > self.timer_compact_threshold and self._ncancelled * 2 >= size:
            # In place: the hub's loop holds the list across a turn.
            timers[:] = [e for e in timers if e[2].active]
            heapq.heapify(timers)
            self._ncancelled = 0

    def get_timers_count(self) -> int:
        """Number of timers in the heap, cancelled ones not yet dropped included."""
        return len(self.timers)

    @property
    def timers_canceled(self) -> int:
        """Cancelled timers still in the heap (dropped when they dominate it)."""
        return self._ncancelled
