"""Event, Semaphore, BoundedSemaphore, Lock."""

from __future__ import annotations

import time

import pytest
from helpers.green import settle

from nettools import BoundedSemaphore, Event, Lock, Semaphore, sleep, spawn

pytestmark = pytest.mark.timeout(10)


# ------------------------------------------------------------------- Event


def test_event_wait_returns_the_sent_value():
    ev = Event()
    waiter = spawn(ev.wait)
    settle()
    assert not waiter.dead
    ev.send("value")
    assert waiter.wait() == "value"


def test_event_ready_and_wait_after_send():
    ev = Event()
    assert not ev.ready()
    assert ev.poll("nothing") == "nothing"
    ev.send(3)
    assert ev.ready() and ev.has_result() and not ev.has_exception()
    assert ev.wait() == 3  # no waiting once sent
    assert ev.poll() == 3


def test_event_send_twice_raises():
    ev = Event()
    ev.send(1)
    with pytest.raises(AssertionError):
        ev.send(2)


def test_event_reset_makes_it_waitable_again():
    ev = Event()
    ev.send(1)
    ev.reset()
    assert not ev.ready()
    waiter = spawn(ev.wait)
    settle()
    assert not waiter.dead
    ev.send(2)
    assert waiter.wait() == 2


def test_event_reset_of_an_unsent_event_raises():
    with pytest.raises(AssertionError):
        Event().reset()


def test_event_send_exception_makes_waiters_raise():
    ev = Event()
    waiter = spawn(ev.wait)
    settle()
    ev.send_exception(KeyError("k"))
    with pytest.raises(KeyError):
        waiter.wait()
    assert ev.has_exception()
    with pytest.raises(KeyError):
        ev.wait()


def test_event_send_exception_with_class_and_argument():
    ev = Event()
    ev.send_exception(ValueError, "bad")
    with pytest.raises(ValueError, match="bad"):
        ev.wait()


def test_event_wait_with_timeout_returns_none():
    ev = Event()
    t0 = time.monotonic()
    assert ev.wait(timeout=0.03) is None
    assert 0.03 - 1e-3 <= time.monotonic() - t0 < 1.0
    assert not ev._waiters  # the timed-out waiter left


def test_waiter_arriving_after_reset_is_not_woken_by_the_earlier_send():
    ev = Event()
    old = spawn(ev.wait)
    settle()
    ev.send("old")  # wakes `old` on the next turn
    ev.reset()
    assert ev.wait(timeout=0.02) is None  # this wait began after the reset
    assert old.wait() == "old"


def test_event_wakes_every_waiter_with_the_value():
    ev = Event()
    waiters = [spawn(ev.wait) for _ in range(10)]
    settle()
    ev.send("all")
    assert [w.wait() for w in waiters] == ["all"] * 10


# --------------------------------------------------------------- Semaphore


def test_semaphore_counts_units():
    sem = Semaphore(2)
    assert sem.acquire() and sem.acquire()
    assert sem.locked()
    assert sem.acquire(blocking=False) is False
    sem.release()
    assert not sem.locked()
    assert sem.acquire(blocking=False) is True


def test_semaphore_blocks_until_released():
    sem = Semaphore(0)
    waiter = spawn(sem.acquire)
    settle()
    assert not waiter.dead
    assert sem.waiting() == 1
    sem.release()
    assert waiter.wait() is True
    assert sem.counter == 0


def test_semaphore_serves_waiters_in_fifo_order():
    sem = Semaphore(0)
    order = []

    def take(i):
        sem.acquire()
        order.append(i)

    gts = [spawn(take, i) for i in range(10)]
    settle()
    assert sem.waiting() == 10
    for _ in range(10):
        sem.release()
        settle()
    for gt in gts:
        gt.wait()
    assert order == list(range(10))


def test_new_acquirer_does_not_jump_ahead_of_waiters():
    sem = Semaphore(0)
    order = []

    def take(name):
        sem.acquire()
        order.append(name)

    first = spawn(take, "waiter")
    settle()
    sem.release()  # a unit is handed to the waiter on the next turn ...
    assert sem.acquire(blocking=False) is False  # ... so a newcomer cannot take it
    first.wait()
    assert order == ["waiter"]


def test_semaphore_acquire_with_timeout_returns_false():
    sem = Semaphore(0)
    t0 = time.monotonic()
    assert sem.acquire(timeout=0.03) is False
    assert time.monotonic() - t0 >= 0.03 - 1e-3
    assert sem.waiting() == 0
    assert sem.acquire(timeout=0) is False


def test_semaphore_acquire_with_timeout_returns_true_when_released_in_time():
    sem = Semaphore(0)
    spawn(sem.release)
    assert sem.acquire(timeout=5) is True


def test_semaphore_negative_initial_value_raises():
    with pytest.raises(ValueError):
        Semaphore(-1)


def test_semaphore_context_manager_acquires_and_releases():
    sem = Semaphore(1)
    with sem:
        assert sem.locked()
    assert not sem.locked()


def test_semaphore_context_manager_releases_on_error():
    sem = Semaphore(1)
    with pytest.raises(ValueError):
        with sem:
            raise ValueError
    assert sem.counter == 1


def test_bounded_semaphore_over_release_raises_value_error():
    sem = BoundedSemaphore(2)
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()
    assert sem.counter == 2


def test_plain_semaphore_may_be_released_beyond_its_initial_value():
    sem = Semaphore(1)
    sem.release()
    assert sem.counter == 2


# -------------------------------------------------------------------- Lock


def test_lock_excludes_a_second_holder_until_released():
    lock = Lock()
    order = []

    def worker(name):
        with lock:
            order.append(f"{name} in")
            sleep(0)
            sleep(0)
            order.append(f"{name} out")

    a, b = spawn(worker, "a"), spawn(worker, "b")
    a.wait()
    b.wait()
    assert order == ["a in", "a out", "b in", "b out"]


def test_lock_acquire_nonblocking_fails_while_held():
    lock = Lock()
    assert lock.acquire()
    assert lock.locked()
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0.01) is False
    lock.release()
    assert not lock.locked()


def test_releasing_an_unlocked_lock_raises_runtime_error():
    lock = Lock()
    with pytest.raises(RuntimeError):
        lock.release()
    lock.acquire()
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()


def test_lock_context_manager_releases_on_error():
    lock = Lock()
    with pytest.raises(KeyError):
        with lock:
            raise KeyError
    assert not lock.locked()
