"""Helpers for tests that run greenthreads on this thread's hub."""

from __future__ import annotations

import contextlib
import time

import greenlet

from nettools import sleep, spawn
from nettools.kernel.greenthread import GreenThread
from nettools.kernel.hub import get_hub

#: Rounds ``settle`` tries before it decides that something never stops running.
SETTLE_ROUNDS = 1000


def settle(rounds: int = SETTLE_ROUNDS) -> None:
    """Return once every other greenthread of this thread is blocked.

    Blocked means parked on something that has not happened yet: an fd that is
    not ready, a timer not yet due, an Event, a Queue, a lock, a thread's
    answer.  This is trio's ``wait_all_tasks_blocked``: a test starts
    greenthreads, settles, and then knows that each has run as far as it can
    go -- without guessing how many ``sleep(0)`` turns that takes.

    How it knows: the caller parks until the hub has run everything ready, the
    due timers and one poll of the fds (its wake-up comes through
    ``run_callback_threadsafe``, which the hub only handles after polling).  A
    round in which no other greenlet was switched to (watched with
    ``greenlet.settrace``), no callback is left in the ready queue and no timer
    fired or was scheduled shows that nothing is runnable.  A greenthread that
    never stops running (a ``sleep(0)`` loop) fails the test after ``rounds``.
    """
    hub = get_hub()
    me = greenlet.getcurrent()
    if me is hub.greenlet:
        raise RuntimeError("settle() waits for the hub: call it from a greenthread")
    others_ran = False

    def watch(event: str, args: tuple) -> None:
        nonlocal others_ran
        if event in ("switch", "throw"):
            target = args[1]
            if target is not me and target is not hub.greenlet:
                others_ran = True
        if previous is not None:
            previous(event, args)

    class Wakeup:
        """Resumes the caller unless the caller already left (a kill or timeout)."""

        live = True

        def __call__(self) -> None:
            if self.live:
                me.switch()

    previous = greenlet.settrace(watch)
    try:
        for _ in range(rounds):
            others_ran = False
            timers = hub.live_timers()
            wakeup = Wakeup()
            hub.run_callback_threadsafe(wakeup)
            try:
                hub.switch()
            finally:
                wakeup.live = False
            if not others_ran and not hub.ready and hub.live_timers() == timers:
                return
    finally:
        greenlet.settrace(previous)
    raise AssertionError(f"greenthreads were still running after {rounds} rounds of settle()")


def ticker(ticks: list, n: int = 5, interval: float = 0.01) -> GreenThread:
    """Spawn a greenthread that appends ``time.monotonic()`` to ``ticks`` ``n`` times,
    ``interval`` apart: proof that the hub kept running while something waited."""

    def tick() -> None:
        for _ in range(n):
            ticks.append(time.monotonic())
            sleep(interval)

    return spawn(tick)


@contextlib.contextmanager
def ticking(interval: float = 0.01):
    """Count hub timer ticks in a greenthread until the ``with`` block ends:
    proof that the hub kept running."""
    ticks = [0]

    def run():
        while True:
            sleep(interval)
            ticks[0] += 1

    gt = spawn(run)
    try:
        yield ticks
    finally:
        gt.kill()
