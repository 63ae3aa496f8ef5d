"""The green kernel at work: what ``make demo`` runs.

Fans 500 timed jobs out over a GreenPool of 100, collects results in spawn
order with a GreenPile, moves items through a bounded Queue between producers
and consumers, and shows a Timeout cutting a slow job short -- printing what it
did and how long each part took.

Run it:  python recipes/kernel_demo.py [--jobs 500] [--pool 100]
"""

from __future__ import annotations

import argparse
import random
import sys
import time

import nettools


def job(n: int, delay: float) -> tuple[int, float]:
    """Pretend to do I/O: wait ``delay`` seconds without blocking the others."""
    nettools.sleep(delay)
    return n, delay


def fan_out(jobs: int, pool_size: int) -> None:
    rng = random.Random(1)
    delays = [rng.uniform(0.01, 0.05) for _ in range(jobs)]
    pool = nettools.GreenPool(pool_size)
    running = peak = 0

    def tracked(n: int) -> tuple[int, float]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            return job(n, delays[n])
        finally:
            running -= 1

    start = time.perf_counter()
    results = list(pool.imap(tracked, range(jobs)))
    took = time.perf_counter() - start
    serial = sum(delays)
    assert [n for n, _ in results] == list(range(jobs))
    print(
        f"GreenPool({pool_size}).imap: {jobs} jobs sleeping 10-50 ms each, "
        f"{serial:.1f}s of waiting done in {took:.2f}s "
        f"({serial / took:.0f}x overlap, never more than {peak} at once)"
    )


def pile_in_order(jobs: int) -> None:
    pile = nettools.GreenPile(jobs)
    start = time.perf_counter()
    # Later jobs finish first, yet the pile hands results back in spawn order.
    for n in range(jobs):
        pile.spawn(job, n, 0.05 - n * 0.0001)
    order = [n for n, _ in pile]
    took = time.perf_counter() - start
    assert order == list(range(jobs))
    print(f"GreenPile: {jobs} results collected in spawn order in {took:.2f}s")


def producers_consumers(items: int) -> None:
    q: nettools.Queue = nettools.Queue(maxsize=10)
    got: list[int] = []

    def producer(base: int) -> None:
        for i in range(items // 10):
            q.put(base + i)

    def consumer() -> None:
        while True:
            item = q.get()
            if item is None:
                return
            got.append(item)
            q.task_done()

    start = time.perf_counter()
    consumers = [nettools.spawn(consumer) for _ in range(5)]
    producers = [nettools.spawn(producer, p * 1_000_000) for p in range(10)]
    for p in producers:
        p.wait()
    q.join()
    for _ in consumers:
        q.put(None)
    for c in consumers:
        c.wait()
    took = time.perf_counter() - start
    assert len(got) == len(set(got)) == items
    print(
        f"Queue(maxsize=10): 10 producers, 5 consumers moved {items} items "
        f"with none lost or duplicated in {took * 1000:.0f} ms"
    )


def timeout_demo() -> None:
    start = time.perf_counter()
    try:
        with nettools.Timeout(0.1):
            nettools.sleep(10)
    except nettools.Timeout:
        print(f"Timeout(0.1) stopped a 10 s job after {time.perf_counter() - start:.2f}s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--pool", type=int, default=100)
    args = parser.parse_args(argv)
    print(f"nettools {nettools.__version__}: the green kernel")
    fan_out(args.jobs, args.pool)
    pile_in_order(200)
    producers_consumers(10_000)
    timeout_demo()
    return 0


if __name__ == "__main__":
    sys.exit(main())
