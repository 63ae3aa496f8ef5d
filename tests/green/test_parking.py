"""nettools.green._parking: the green Condition and Event that threading and queue wait with."""

from __future__ import annotations

import queue as stdlib_queue
import threading as stdlib_threading

import pytest
from helpers.green import settle
from helpers.isolated import run_isolated

import nettools
from nettools.green import threading as gthreading
from nettools.green._parking import Condition, Event

pytestmark = pytest.mark.timeout(60)


class _Nudge(Exception):
    pass


def test_the_green_module_and_its_threads_use_them():
    assert gthreading.Condition is Condition and gthreading.Event is Event
    assert isinstance(Condition(), stdlib_threading.Condition)
    assert isinstance(Event(), stdlib_threading.Event)
    assert type(gthreading.Thread()._started) is Event
    assert type(gthreading.Semaphore()._cond) is Condition
    assert repr(Event()).startswith("<threading.Event at ")


def test_event_set_clear_and_timeouts():
    ev = Event()
    assert ev.wait(0) is False
    assert ev.wait(0.01) is False
    assert ev._waiters == type(ev._waiters)()  # a wait that timed out leaves no waiter
    got = []
    waiters = [nettools.spawn(lambda: got.append(ev.wait(5))) for _ in range(3)]
    settle()
    ev.set()
    ev.clear()  # cleared before the waiters ran: they were woken by the set all the same
    for w in waiters:
        w.wait()
    assert got == [True, True, True]
    assert not ev.is_set()
    ev.set()
    assert ev.wait() is True and ev.wait(0) is True


def test_condition_notify_counts_only_waiters_still_waiting():
    cond = Condition(gthreading.Lock())
    woken = []

    def waiter(name: str, timeout: float | None) -> None:
        with cond:
            woken.append((name, cond.wait(timeout)))

    short = nettools.spawn(waiter, "short", 0.01)
    killed = nettools.spawn(waiter, "killed", None)
    patient = nettools.spawn(waiter, "patient", 5)
    settle()
    killed.kill()
    short.wait()  # timed out
    with cond:
        cond.notify(1)  # must reach the one live waiter, not the two that left
    patient.wait()
    assert woken == [("short", False), ("patient", True)]
    assert not cond._waiters


def test_condition_wait_for_and_notify_all():
    cond = Condition()  # default lock: a green RLock
    state = {"n": 0}
    results = []

    def consumer() -> None:
        with cond, cond:  # re-entrant
            results.append(cond.wait_for(lambda: state["n"] >= 2, 5))

    consumers = [nettools.spawn(consumer) for _ in range(3)]
    for _ in range(2):
        settle()
        with cond:
            state["n"] += 1
            cond.notify_all()
    for c in consumers:
        c.wait()
    assert results == [True, True, True]
    with cond:
        assert cond.wait_for(lambda: False, 0.01) is False
    with pytest.raises(RuntimeError):
        cond.wait(0)
    with pytest.raises(RuntimeError):
        cond.notify()


def test_a_wakeup_never_reaches_a_later_wait():
    """A waiter notified, then thrown out before it ran, must not be woken in its next wait."""
    cond = Condition(gthreading.Lock())
    later = Event()
    steps = []

    def waiter() -> None:
        with cond:
            try:
                cond.wait()
            except _Nudge:
                steps.append("thrown out")
        steps.append(("later", later.wait(0.2)))

    g = nettools.spawn(waiter)
    settle()
    with cond:
        cond.notify()  # the wake-up is now on its way through the hub...
    g.kill(_Nudge())  # ...when the waiter leaves by an exception
    g.wait()
    assert steps == ["thrown out", ("later", False)]  # the later wait ran to its timeout


def test_waiters_in_real_threads_and_wakers_in_real_threads():
    cond = Condition(gthreading.Lock())
    ev = Event()
    out = stdlib_queue.SimpleQueue()

    def real_thread() -> None:
        # waits (through a hub of its own) for a greenthread's set...
        out.put(("event", ev.wait(5)))
        # ...then notifies the greenthread waiting on the condition
        with cond:
            cond.notify()

    with cond:
        t = stdlib_threading.Thread(target=real_thread)
        t.start()
        nettools.spawn(lambda: (nettools.sleep(0.02), ev.set()))
        assert cond.wait(5) is True  # woken from the other OS thread
    assert out.get(timeout=5) == ("event", True)
    t.join(5)
    assert cond._shared and ev._shared


def test_patched_threading_and_queue_use_them():
    run_isolated(
        """
        import threading
        EarlyEvent = threading.Event      # a reference taken before patching
        import nettools
        nettools.monkey_patch()
        import queue
        from nettools.green import _parking
        assert threading.Event is _parking.Event and threading.Condition is _parking.Condition
        assert isinstance(threading.Event(), EarlyEvent)
        early = EarlyEvent()              # the standard class, on green locks: still works
        threading.Timer(0.01, early.set).start()
        assert early.wait(5)
        q = queue.Queue()
        assert type(q.not_empty) is _parking.Condition
        t = threading.Thread(target=lambda: q.put(threading.current_thread().name))
        t.start()
        assert q.get(timeout=5) == t.name
        t.join()
        print("OK")
        """
    )
