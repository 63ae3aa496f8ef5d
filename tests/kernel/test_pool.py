"""GreenPool and GreenPile."""

from __future__ import annotations

import pytest
from helpers.green import settle

from nettools import Event, GreenPile, GreenPool, GreenThread, sleep, spawn
from nettools.kernel.greenthread import current_greenthread

pytestmark = pytest.mark.timeout(30)


# ------------------------------------------------------------------ GreenPool


def test_pool_never_runs_more_than_its_size():
    size = 10
    pool = GreenPool(size)
    running = 0
    max_seen = 0
    done = 0

    def call(i):
        nonlocal running, max_seen, done
        running += 1
        max_seen = max(max_seen, running)
        for _ in range(i % 4 + 1):
            sleep(0)
        running -= 1
        done += 1

    for i in range(10_000):
        pool.spawn(call, i)
    pool.waitall()
    assert done == 10_000
    assert max_seen == size  # filled, never exceeded


def test_spawn_returns_a_greenthread_with_the_result():
    pool = GreenPool(2)
    gt = pool.spawn(lambda x: x * 2, 21)
    assert isinstance(gt, GreenThread)
    assert gt.wait() == 42


def test_spawn_blocks_while_the_pool_is_full():
    pool = GreenPool(2)
    ev = Event()
    for _ in range(2):
        pool.spawn(ev.wait)
    spawner = spawn(pool.spawn, lambda: "third")
    settle()
    assert not spawner.dead  # blocked in pool.spawn
    assert pool.waiting() == 1
    ev.send()
    assert spawner.wait().wait() == "third"
    pool.waitall()


def test_spawn_from_inside_a_full_pool_runs_inline():
    pool = GreenPool(1)

    def outer():
        inner = pool.spawn(current_greenthread)  # pool is full: no deadlock
        return inner.wait()

    gt = pool.spawn(outer)
    assert gt.wait() is gt  # the inner call ran in outer's greenthread
    assert pool.running() == 0


def test_inline_spawn_keeps_the_inner_exception_for_wait():
    pool = GreenPool(1)

    def outer():
        inner = pool.spawn(lambda: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            inner.wait()
        return "ok"

    assert pool.spawn(outer).wait() == "ok"


def test_spawn_n_runs_in_the_pool():
    pool = GreenPool(2)
    ev = Event()
    out = []

    def call(x):
        ev.wait()
        out.append(x)

    assert pool.spawn_n(call, 1) is None
    pool.spawn_n(call, 2)
    settle()
    assert pool.running() == 2 and pool.free() == 0
    ev.send()
    pool.waitall()
    assert sorted(out) == [1, 2]


def test_imap_yields_results_in_input_order():
    pool = GreenPool(4)

    def call(x):
        for _ in range((20 - x) % 5):  # later inputs often finish first
            sleep(0)
        return x * x

    assert list(pool.imap(call, range(20))) == [x * x for x in range(20)]


def test_imap_with_several_iterables():
    pool = GreenPool(3)
    assert list(pool.imap(pow, [2, 3, 4], [3, 2, 1])) == [8, 9, 4]


def test_imap_raises_the_call_exception_at_its_turn():
    pool = GreenPool(3)

    def call(x):
        if x == 2:
            raise ValueError(x)
        return x

    it = pool.imap(call, range(5))
    assert next(it) == 0
    assert next(it) == 1
    with pytest.raises(ValueError):
        next(it)
    pool.waitall()


def test_imap_keeps_memory_bounded_on_a_huge_input():
    size = 10
    pool = GreenPool(size)
    live = 0  # made by the generator, result not yet consumed
    peak = 0
    made = 0

    def items():
        nonlocal live, peak, made
        for i in range(1_000_000):
            live += 1
            made += 1
            peak = max(peak, live)
            yield i

    def call(x):
        sleep(0)
        return x

    it = pool.imap(call, items())
    for n, result in enumerate(it):
        assert result == n
        live -= 1
        if n == 3000:
            break
    it.close()
    pool.waitall()
    assert peak <= size + 2
    assert made <= 3001 + size + 2  # the input was not read ahead


def test_starmap():
    pool = GreenPool(2)
    assert list(pool.starmap(pow, [(2, 3), (3, 2), (10, 0)])) == [8, 9, 1]


def test_waitall_waits_for_every_greenthread():
    pool = GreenPool(5)
    gts = [pool.spawn(sleep, 0.001 * i) for i in range(5)]
    pool.waitall()
    assert all(gt.dead for gt in gts)
    assert pool.running() == 0


def test_waitall_on_an_idle_pool_returns_at_once():
    GreenPool(3).waitall()


def test_waitall_called_from_inside_the_pool_raises():
    pool = GreenPool(2)

    def inside():
        with pytest.raises(RuntimeError):
            pool.waitall()
        return "raised"

    assert pool.spawn(inside).wait() == "raised"


def test_running_free_waiting():
    pool = GreenPool(3)
    ev = Event()
    assert (pool.running(), pool.free(), pool.waiting()) == (0, 3, 0)
    pool.spawn(ev.wait)
    pool.spawn(ev.wait)
    assert (pool.running(), pool.free(), pool.waiting()) == (2, 1, 0)
    pool.spawn(ev.wait)
    spawner = spawn(pool.spawn, ev.wait)
    settle()
    assert (pool.running(), pool.free(), pool.waiting()) == (3, 0, 1)
    ev.send()
    spawner.wait()
    pool.waitall()
    assert (pool.running(), pool.free(), pool.waiting()) == (0, 3, 0)


def test_resize_up_lets_a_waiting_spawn_in():
    pool = GreenPool(1)
    ev = Event()
    pool.spawn(ev.wait)
    spawner = spawn(pool.spawn, lambda: "second")
    settle()
    assert not spawner.dead
    pool.resize(2)
    assert spawner.wait().wait() == "second"
    assert pool.size == 2
    ev.send()
    pool.waitall()


def test_resize_down_waits_until_enough_calls_finish():
    pool = GreenPool(3)
    evs = [Event() for _ in range(3)]
    for ev in evs:
        pool.spawn(ev.wait)
    pool.resize(1)
    assert pool.running() == 3  # running calls are not interrupted
    spawner = spawn(pool.spawn, lambda: "late")
    for ev in evs[:2]:
        ev.send()
        settle()
        assert not spawner.dead  # still more than one running
    evs[2].send()
    assert spawner.wait().wait() == "late"
    pool.waitall()
    assert pool.free() == 1


def test_pool_negative_size_raises():
    with pytest.raises(ValueError):
        GreenPool(-1)


# ------------------------------------------------------------------ GreenPile


def test_pile_returns_results_in_spawn_order_even_when_later_ones_finish_first():
    pile = GreenPile(10)
    evs = [Event() for _ in range(5)]
    finished = []

    def job(i):
        evs[i].wait()
        finished.append(i)
        return i * 10

    for i in range(5):
        pile.spawn(job, i)
    settle()
    for ev in reversed(evs):
        ev.send()
        settle()
    assert finished == [4, 3, 2, 1, 0]
    assert list(pile) == [0, 10, 20, 30, 40]


def test_pile_next_and_stop_iteration():
    pile = GreenPile(2)
    pile.spawn(lambda: "a")
    pile.spawn(lambda: "b")
    assert len(pile) == 2
    assert next(pile) == "a"
    assert pile.next() == "b"
    assert len(pile) == 0
    with pytest.raises(StopIteration):
        next(pile)


def test_pile_raises_an_items_exception_at_its_turn():
    pile = GreenPile(3)
    pile.spawn(lambda: 1)
    pile.spawn(lambda: 1 / 0)
    pile.spawn(lambda: 3)
    assert next(pile) == 1
    with pytest.raises(ZeroDivisionError):
        next(pile)
    assert next(pile) == 3


def test_pile_uses_a_given_pool():
    pool = GreenPool(1)
    pile = GreenPile(pool)
    assert pile.pool is pool
    ev = Event()
    pile.spawn(ev.wait)
    spawner = spawn(pile.spawn, lambda: "second")
    settle()
    assert not spawner.dead  # the pool's size limits the pile
    ev.send("first")
    spawner.wait()
    assert list(pile) == ["first", "second"]
