"""nettools.kernel.itempool: Pool and TokenPool (eventlet's pools)."""

from __future__ import annotations

import itertools

import pytest

from nettools.kernel.greenthread import sleep, spawn
from nettools.kernel.itempool import Pool, Token, TokenPool
from nettools.kernel.timeout import Timeout


def counter_pool(**kw) -> Pool:
    numbers = itertools.count()
    return Pool(create=lambda: next(numbers), **kw)


def test_items_are_made_on_demand_up_to_max_size():
    pool = counter_pool(max_size=2)
    assert pool.free() == 2 and pool.current_size == 0
    a, b = pool.get(), pool.get()
    assert (a, b) == (0, 1) and pool.free() == 0
    pool.put(a)
    assert pool.get() == 0  # reused, not a third item
    assert pool.current_size == 2


def test_min_size_makes_items_at_once():
    pool = counter_pool(min_size=3, max_size=4)
    assert pool.current_size == 3 and list(pool.free_items) == [0, 1, 2]


def test_queue_and_stack_order():
    fifo = counter_pool(min_size=3, max_size=3)
    lifo = counter_pool(min_size=3, max_size=3, order_as_stack=True)
    assert [fifo.get() for _ in range(3)] == [0, 1, 2]
    assert [lifo.get() for _ in range(3)] == [2, 1, 0]


def test_put_hands_the_item_to_a_waiting_get():
    pool = counter_pool(max_size=1)
    held = pool.get()
    got = []
    waiter = spawn(lambda: got.append(pool.get()))
    sleep(0)
    assert pool.waiting() == 1
    pool.put(held)
    # Straight to the waiter: a newcomer's get() would now have to wait.
    assert pool.free() == 0
    waiter.wait()
    assert got == [held] and pool.waiting() == 0


def test_a_waiter_that_times_out_leaves_the_line():
    pool = counter_pool(max_size=1)
    held = pool.get()
    with pytest.raises(Timeout), Timeout(0.01):
        pool.get()
    assert pool.waiting() == 0
    pool.put(held)
    assert list(pool.free_items) == [held]


def test_item_context_puts_back_even_on_error():
    pool = counter_pool(max_size=1)
    with pytest.raises(RuntimeError), pool.item() as thing:
        assert pool.free() == 0
        raise RuntimeError(thing)
    assert pool.free() == 1


def test_resize_grows_for_waiters_and_shrinks_on_put():
    pool = counter_pool(max_size=1)
    held = pool.get()
    got = []
    waiter = spawn(lambda: got.append(pool.get()))
    sleep(0)
    pool.resize(2)  # a new item for the waiter
    waiter.wait()
    assert got == [1] and pool.current_size == 2
    pool.resize(1)
    pool.put(held)  # dropped: over the new size
    assert pool.current_size == 1 and not pool.free_items


def test_create_failure_frees_the_slot():
    calls = []

    def create():
        calls.append(1)
        if len(calls) == 1:
            raise OSError("first fails")
        return "ok"

    pool = Pool(max_size=1, create=create)
    with pytest.raises(OSError):
        pool.get()
    assert pool.current_size == 0
    assert pool.get() == "ok"


def test_subclass_create_and_token_pool():
    class Strings(Pool):
        def create(self):
            return "s"

    assert Strings(max_size=1).get() == "s"
    tokens = TokenPool(max_size=2)
    a, b = tokens.get(), tokens.get()
    assert isinstance(a, Token) and a is not b and tokens.free() == 0
    with pytest.raises(NotImplementedError):
        Pool().get()
