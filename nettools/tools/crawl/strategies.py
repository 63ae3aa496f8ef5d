"""The two ways a crawl gives newly found links a greenthread.

Both call ``work(link)``, which visits the link and returns the links it
newly admitted, and both return once every link has been worked on:

* ``recursive``: each visit spawns the visits of the links it found into one
  GreenPool of ``concurrency``; the crawl is done when the pool is idle.  When
  the pool is full the finder queues the links and every greenthread takes
  queued links before it exits (iteratively: a deep site never deepens the
  stack).
* ``producer-consumer``: a frontier Queue, fed by the visits, drained by
  ``concurrency`` workers; the crawl is done when the queue has been joined.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable

from ...kernel.greenthread import spawn
from ...kernel.pool import GreenPool
from ...kernel.queue import Queue
from .results import Link

__all__ = ["STRATEGIES", "run_strategy", "run_recursive", "run_producer_consumer"]

STRATEGIES = ("recursive", "producer-consumer")

Work = Callable[[Link], list[Link]]


def run_strategy(name: str, seeds: Iterable[Link], work: Work, concurrency: int) -> None:
    """Work on ``seeds`` and all they lead to, ``concurrency`` at a time, the
    way strategy ``name`` (one of ``STRATEGIES``) does."""
    if name == "recursive":
        run_recursive(seeds, work, concurrency)
    elif name == "producer-consumer":
        run_producer_consumer(seeds, work, concurrency)
    else:
        raise ValueError(f"unknown strategy {name!r} (use {' or '.join(STRATEGIES)})")


def run_recursive(seeds: Iterable[Link], work: Work, concurrency: int) -> None:
    """Each visit spawns the visits of what it found into one pool."""
    pool = GreenPool(concurrency)
    overflow: deque[Link] = deque()

    def schedule(link: Link) -> None:
        if pool.free() > 0:
            pool.spawn_n(visit, link)
        else:  # every slot busy: a running visit takes it before it exits
            overflow.append(link)

    def visit(link: Link) -> None:
        while True:
            for child in work(link):
                schedule(child)
            if not overflow:
                return
            link = overflow.popleft()

    for link in seeds:
        schedule(link)
    pool.waitall()


def run_producer_consumer(seeds: Iterable[Link], work: Work, concurrency: int) -> None:
    """A frontier queue that the visits feed and ``concurrency`` workers drain."""
    frontier: Queue = Queue()

    def worker() -> None:
        while True:
            link = frontier.get()
            if link is None:
                return
            try:
                for child in work(link):
                    frontier.put(child)
            finally:
                frontier.task_done()

    for link in seeds:
        frontier.put(link)
    workers = [spawn(worker) for _ in range(concurrency)]
    frontier.join()
    for _ in workers:
        frontier.put(None)
    for gt in workers:
        gt.wait()
