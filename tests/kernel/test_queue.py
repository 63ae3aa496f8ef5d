"""Queue, LightQueue, PriorityQueue, LifoQueue."""

from __future__ import annotations

import queue as stdlib_queue
import random
import time

import pytest
from helpers.green import settle

from nettools import (
    Empty,
    Event,
    Full,
    LifoQueue,
    LightQueue,
    PriorityQueue,
    Queue,
    sleep,
    spawn,
)

pytestmark = pytest.mark.timeout(20)


def test_empty_and_full_are_the_stdlib_classes():
    assert Empty is stdlib_queue.Empty
    assert Full is stdlib_queue.Full


@pytest.mark.parametrize("cls", [Queue, LightQueue])
def test_put_get_is_fifo(cls):
    q = cls()
    for i in range(10):
        q.put(i)
    assert [q.get() for _ in range(10)] == list(range(10))


def test_get_waits_for_a_put():
    q = Queue()
    getter = spawn(q.get)
    settle()
    assert not getter.dead
    assert q.getting() == 1
    q.put("item")
    assert getter.wait() == "item"
    assert q.getting() == 0


def test_timed_get_on_empty_queue_raises_stdlib_empty():
    q = Queue()
    t0 = time.monotonic()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.03)
    assert 0.03 - 1e-3 <= time.monotonic() - t0 < 1.0
    assert q.getting() == 0


def test_timed_put_on_full_queue_raises_stdlib_full():
    q = Queue(1)
    q.put(1)
    t0 = time.monotonic()
    with pytest.raises(stdlib_queue.Full):
        q.put(2, timeout=0.03)
    assert 0.03 - 1e-3 <= time.monotonic() - t0 < 1.0
    assert q.putting() == 0
    assert q.qsize() == 1
    assert q.get() == 1
    assert q.empty()  # the timed-out item was not added later


def test_put_nowait_and_get_nowait():
    q = Queue(1)
    with pytest.raises(Empty):
        q.get_nowait()
    q.put_nowait("a")
    with pytest.raises(Full):
        q.put_nowait("b")
    assert q.get_nowait() == "a"


def test_qsize_empty_full():
    q = Queue(2)
    assert q.qsize() == 0 and q.empty() and not q.full()
    q.put(1)
    assert q.qsize() == 1 and not q.empty() and not q.full()
    q.put(2)
    assert q.qsize() == 2 and len(q) == 2 and q.full()


def test_unbounded_queue_is_never_full():
    q = Queue()
    for i in range(1000):
        q.put_nowait(i)
    assert not q.full()


def test_getting_and_putting_count_blocked_greenthreads():
    q = Queue(1)
    q.put(0)
    putters = [spawn(q.put, i) for i in range(1, 4)]
    settle()
    assert q.putting() == 3 and q.getting() == 0
    assert [q.get() for _ in range(4)] == [0, 1, 2, 3]
    for p in putters:
        p.wait()
    assert q.putting() == 0
    getters = [spawn(q.get) for _ in range(2)]
    settle()
    assert q.getting() == 2
    q.put("x")
    q.put("y")
    assert sorted(g.wait() for g in getters) == ["x", "y"]
    assert q.getting() == 0


def test_blocked_put_proceeds_when_room_appears():
    q = Queue(1)
    q.put("first")
    putter = spawn(q.put, "second")
    settle()
    assert not putter.dead
    assert q.get() == "first"
    putter.wait()
    assert q.get() == "second"


def test_channel_put_blocks_until_a_getter_takes_the_item():
    ch = Queue(0)
    assert ch.full()
    putter = spawn(ch.put, "item")
    settle()
    assert not putter.dead  # nobody is getting yet
    assert ch.qsize() == 0
    assert ch.get() == "item"
    putter.wait()


def test_channel_put_does_not_block_when_a_getter_waits():
    ch = Queue(0)
    getter = spawn(ch.get)
    settle()
    ch.put("item")
    assert getter.wait() == "item"


def test_channel_put_nowait_without_getter_raises_full():
    with pytest.raises(Full):
        Queue(0).put_nowait(1)


def test_join_waits_until_every_item_is_done():
    q = Queue()
    for i in range(3):
        q.put(i)
    joiner = spawn(q.join)
    settle()
    assert not joiner.dead
    for _ in range(3):
        q.get()
        q.task_done()
    assert joiner.wait() is True
    assert q.join() is True  # nothing unfinished


def test_join_with_timeout_returns_false():
    q = Queue()
    q.put(1)
    assert q.join(timeout=0.01) is False


def test_join_after_refill_waits_again():
    q = Queue()
    q.put(1)
    q.get()
    q.task_done()
    q.put(2)
    assert q.join(timeout=0.01) is False
    q.get()
    q.task_done()
    assert q.join(timeout=1) is True


def test_too_many_task_done_raises_value_error():
    q = Queue()
    q.put(1)
    q.get()
    q.task_done()
    with pytest.raises(ValueError):
        q.task_done()


def test_priority_queue_returns_lowest_first():
    q = PriorityQueue()
    for item in [(3, "c"), (1, "a"), (2, "b"), (0, "z")]:
        q.put(item)
    assert [q.get() for _ in range(4)] == [(0, "z"), (1, "a"), (2, "b"), (3, "c")]


def test_priority_queue_waiting_getter_gets_the_lowest_item_put_before_it_woke():
    q = PriorityQueue()
    getter = spawn(q.get)
    settle()
    for v in (3, 1, 2):  # all put before the getter runs again
        q.put(v)
    assert getter.wait() == 1
    assert [q.get(), q.get()] == [2, 3]


def test_lifo_queue_returns_last_first():
    q = LifoQueue()
    for i in range(5):
        q.put(i)
    assert [q.get() for _ in range(5)] == [4, 3, 2, 1, 0]


def test_resize_lets_blocked_putters_in():
    q = Queue(1)
    q.put(1)
    putter = spawn(q.put, 2)
    settle()
    assert not putter.dead
    q.resize(2)
    putter.wait()
    assert q.qsize() == 2


@pytest.mark.timeout(60)
def test_many_producers_and_consumers_lose_and_duplicate_nothing():
    n_producers = n_consumers = 1000
    per = 20
    q = Queue(10)
    got = []

    def producer(p):
        for i in range(per):
            q.put((p, i))

    def consumer():
        for _ in range(per):
            got.append(q.get())

    consumers = [spawn(consumer) for _ in range(n_consumers)]
    producers = [spawn(producer, p) for p in range(n_producers)]
    for gt in producers + consumers:
        gt.wait()
    assert len(got) == n_producers * per
    assert set(got) == {(p, i) for p in range(n_producers) for i in range(per)}
    assert q.empty() and q.getting() == 0 and q.putting() == 0
    # each producer's items arrive in the order it put them
    last = {}
    for p, i in got:
        assert i == last.get(p, -1) + 1
        last[p] = i


def test_getter_that_timed_out_does_not_swallow_the_next_item():
    q = Queue()
    getter = spawn(q.get, timeout=0.01)
    with pytest.raises(Empty):
        getter.wait()
    q.put("after the timeout")
    assert q.get(timeout=1) == "after the timeout"


def test_getter_timing_out_as_an_item_arrives_does_not_swallow_it(hub):
    q = Queue()
    outcome = []
    parked = Event()

    def racing_getter():
        parked.send()
        try:
            outcome.append(q.get(timeout=0.02))
        except Empty:
            outcome.append("empty")

    gt = spawn(racing_getter)
    parked.wait()
    hub.schedule(0.02, q.put, "raced")  # due in the same hub turn as the getter's timeout
    gt.wait()
    settle()
    if outcome == ["empty"]:
        assert q.get_nowait() == "raced"
    else:
        assert outcome == ["raced"] and q.empty()


@pytest.mark.timeout(30)
def test_racing_timed_getters_never_lose_an_item():
    rng = random.Random(1234)
    q = Queue()
    got = []
    items = list(range(300))

    def getter(timeout):
        try:
            got.append(q.get(timeout=timeout))
        except Empty:
            pass

    getters = [spawn(getter, rng.choice([0.0005, 0.001, 0.002, 0.004])) for _ in range(300)]

    def producer():
        for i in items:
            q.put(i)
            if i % 3 == 0:
                sleep(0.0005)
            else:
                sleep(0)

    producer_gt = spawn(producer)
    producer_gt.wait()
    for gt in getters:
        gt.wait()
    leftover = []
    while not q.empty():
        leftover.append(q.get_nowait())
    assert sorted(got + leftover) == items  # nothing lost, nothing duplicated


def test_killed_putter_does_not_add_its_item():
    q = Queue(1)
    q.put("kept")
    putter = spawn(q.put, "dropped")
    settle()
    putter.kill()
    assert q.putting() == 0
    assert q.get() == "kept"
    with pytest.raises(Empty):
        q.get(timeout=0.01)
