"""nettools.green.queue: the stdlib queues, parking greenthreads instead of threads."""

from __future__ import annotations

import queue as stdlib_queue
import threading as stdlib_threading
import time

import pytest
from helpers.isolated import run_isolated

import nettools
from nettools.green import queue as gqueue

pytestmark = pytest.mark.timeout(60)

QUEUES = [gqueue.Queue, gqueue.LifoQueue, gqueue.PriorityQueue]


def test_stdlib_classes_and_exceptions():
    assert gqueue.Empty is stdlib_queue.Empty
    assert gqueue.Full is stdlib_queue.Full
    pairs = [
        (gqueue.Queue, stdlib_queue.Queue),
        (gqueue.LifoQueue, stdlib_queue.LifoQueue),
        (gqueue.PriorityQueue, stdlib_queue.PriorityQueue),
        (gqueue.SimpleQueue, stdlib_queue.SimpleQueue),
    ]
    for cls, base in pairs:
        assert isinstance(cls(), base)
    if hasattr(stdlib_queue, "ShutDown"):
        assert gqueue.ShutDown is stdlib_queue.ShutDown


@pytest.mark.parametrize("maxsize", [0, -1])
def test_maxsize_zero_or_negative_is_unbounded(maxsize):
    q = gqueue.Queue(maxsize)
    for i in range(1000):
        q.put_nowait(i)
    assert q.qsize() == 1000 and not q.full()


def test_ordering():
    for cls, expected in zip(QUEUES, [[3, 1, 2], [2, 1, 3], [1, 2, 3]], strict=True):
        q = cls()
        for item in (3, 1, 2):
            q.put(item)
        assert [q.get() for _ in range(3)] == expected


def test_get_parks_until_a_put():
    q = gqueue.Queue()
    ticks = []
    nettools.spawn(lambda: [(ticks.append(1), nettools.sleep(0.01)) for _ in range(5)])
    nettools.spawn_after(0.1, q.put, "late")
    assert q.get(timeout=5) == "late"
    assert len(ticks) == 5


def test_put_parks_while_full():
    q = gqueue.Queue(1)
    q.put(1)
    with pytest.raises(stdlib_queue.Full):
        q.put(2, timeout=0.05)
    with pytest.raises(stdlib_queue.Full):
        q.put_nowait(2)
    nettools.spawn_after(0.05, q.get)
    q.put(3, timeout=5)
    assert q.get_nowait() == 3


def test_timeouts_and_errors():
    q = gqueue.Queue()
    start = time.monotonic()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.1)
    assert time.monotonic() - start >= 0.09
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    with pytest.raises(ValueError):
        q.get(timeout=-1)


def test_task_done_and_join():
    q = gqueue.Queue()
    done = []

    def worker() -> None:
        while True:
            item = q.get()
            nettools.sleep(0.01)
            done.append(item)
            q.task_done()

    gt = nettools.spawn(worker)
    for i in range(5):
        q.put(i)
    q.join()
    assert done == list(range(5))
    with pytest.raises(ValueError):
        q.task_done()
    gt.kill()


@pytest.mark.skipif(not hasattr(stdlib_queue.Queue, "shutdown"), reason="Python 3.13+")
def test_shutdown():
    q = gqueue.Queue()
    waiter = nettools.spawn(q.get)
    nettools.sleep(0.01)
    q.shutdown(immediate=True)
    with pytest.raises(stdlib_queue.ShutDown):
        waiter.wait()


def test_simple_queue():
    q = gqueue.SimpleQueue()
    assert q.empty() and q.qsize() == 0
    with pytest.raises(stdlib_queue.Empty):
        q.get_nowait()
    with pytest.raises(stdlib_queue.Empty):
        q.get(timeout=0.02)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    nettools.spawn_after(0.05, q.put, "x")
    assert q.get(timeout=5) == "x"
    q.put_nowait(1)
    q.put(2, block=False)
    assert [q.get(), q.get()] == [1, 2]


def test_subclass_hooks_still_work():
    class Tagged(gqueue.Queue):
        def _put(self, item):
            super()._put(("tag", item))

    q = Tagged()
    q.put(1)
    assert q.get() == ("tag", 1)


def test_shared_with_a_real_thread():
    q = gqueue.Queue()
    t = stdlib_threading.Thread(target=lambda: (time.sleep(0.05), q.put("from thread")))
    t.start()
    assert q.get(timeout=5) == "from thread"
    t.join()
    back = gqueue.Queue()
    got = []
    t = stdlib_threading.Thread(target=lambda: got.append(back.get(timeout=5)))
    t.start()
    nettools.sleep(0.05)
    back.put("to thread")
    t.join(5)
    assert got == ["to thread"]


def test_monkey_patched_queue():
    run_isolated(
        """
        import queue
        RealQueue = queue.Queue
        import nettools
        nettools.monkey_patch(queue=True)
        from nettools.green import queue as gqueue
        assert nettools.is_monkey_patched("queue")
        assert not nettools.is_monkey_patched("thread")
        assert queue.Queue is gqueue.Queue and issubclass(queue.Queue, RealQueue)
        assert queue.SimpleQueue is gqueue.SimpleQueue
        q = queue.Queue()
        sq = queue.SimpleQueue()
        nettools.spawn_after(0.05, q.put, 1)
        nettools.spawn_after(0.05, sq.put, 2)
        assert q.get(timeout=5) == 1 and sq.get(timeout=5) == 2
        print("OK")
        """
    )
