"""Micro-benchmarks of the scheduler core: spawning, queue hand-offs and yielding.

Each peer's version is written out in full, in that peer's idiomatic API, so that a reader can
check the workloads are the same by eye. Peer libraries are imported inside the functions:
the child process imports only the peer it measures, and the warm-up pays for the import.
"""

from __future__ import annotations

import asyncio

from bench.cases import Case
from bench.cases._aio import on_asyncio, on_uvloop


def _identity(x: int) -> int:
    return x


async def _aidentity(x: int) -> int:
    return x


def _expect_sum(total: int, n: int) -> None:
    # A correctness check, not a timing one: a join that returns before the greenthread ran
    # would otherwise show up as a spectacular speed-up.
    if total != n * (n - 1) // 2:
        raise RuntimeError(f"joined results sum to {total}, expected {n * (n - 1) // 2}")


# --- spawn_join: spawn n do-nothing greenthreads, then wait for each in turn -------------


def _nettools_spawn_join(n: int) -> None:
    import nettools

    spawn = nettools.spawn
    threads = [spawn(_identity, i) for i in range(n)]
    total = 0
    for t in threads:
        total += t.wait()
    _expect_sum(total, n)


def _gevent_spawn_join(n: int) -> None:
    import gevent

    spawn = gevent.spawn
    threads = [spawn(_identity, i) for i in range(n)]
    total = 0
    for t in threads:
        total += t.get()  # like eventlet's wait(): returns the value, re-raises a failure
    _expect_sum(total, n)


def _eventlet_spawn_join(n: int) -> None:
    import eventlet

    spawn = eventlet.spawn
    threads = [spawn(_identity, i) for i in range(n)]
    total = 0
    for t in threads:
        total += t.wait()
    _expect_sum(total, n)


async def _aio_spawn_join(n: int) -> None:
    create_task = asyncio.get_running_loop().create_task
    tasks = [create_task(_aidentity(i)) for i in range(n)]
    total = 0
    for t in tasks:
        total += await t
    _expect_sum(total, n)


# --- queue_pingpong: A puts on q1, B moves it to q2, A takes it back; n round trips ---------


def _expect_last(back: int, n: int) -> None:
    if back != n - 1:
        raise RuntimeError(f"last item back was {back}, expected {n - 1}")


def _nettools_queue_pingpong(n: int) -> None:
    import nettools

    q1, q2 = nettools.Queue(), nettools.Queue()

    def a() -> int:
        for i in range(n):
            q1.put(i)
            back = q2.get()
        return back

    def b() -> None:
        for _ in range(n):
            q2.put(q1.get())

    ta, tb = nettools.spawn(a), nettools.spawn(b)
    _expect_last(ta.wait(), n)
    tb.wait()


def _gevent_queue_pingpong(n: int) -> None:
    import gevent
    import gevent.queue

    q1, q2 = gevent.queue.Queue(), gevent.queue.Queue()

    def a() -> int:
        for i in range(n):
            q1.put(i)
            back = q2.get()
        return back

    def b() -> None:
        for _ in range(n):
            q2.put(q1.get())

    ta, tb = gevent.spawn(a), gevent.spawn(b)
    _expect_last(ta.get(), n)
    tb.get()


def _eventlet_queue_pingpong(n: int) -> None:
    import eventlet
    import eventlet.queue

    q1, q2 = eventlet.queue.Queue(), eventlet.queue.Queue()

    def a() -> int:
        for i in range(n):
            q1.put(i)
            back = q2.get()
        return back

    def b() -> None:
        for _ in range(n):
            q2.put(q1.get())

    ta, tb = eventlet.spawn(a), eventlet.spawn(b)
    _expect_last(ta.wait(), n)
    tb.wait()


async def _aio_queue_pingpong(n: int) -> None:
    q1: asyncio.Queue[int] = asyncio.Queue()
    q2: asyncio.Queue[int] = asyncio.Queue()

    async def a() -> int:
        for i in range(n):
            await q1.put(i)
            back = await q2.get()
        return back

    async def b() -> None:
        for _ in range(n):
            await q2.put(await q1.get())

    loop = asyncio.get_running_loop()
    ta, tb = loop.create_task(a()), loop.create_task(b())
    _expect_last(await ta, n)
    await tb


# --- sleep0: one greenthread yields to the hub n times ------------------------------------
# It runs in a spawned greenthread rather than the main one so that every peer measures the
# same thing as asyncio, where the loop can only be entered from a task.


def _nettools_sleep0(n: int) -> None:
    import nettools

    sleep = nettools.sleep

    def loop() -> None:
        for _ in range(n):
            sleep(0)

    nettools.spawn(loop).wait()


def _gevent_sleep0(n: int) -> None:
    import gevent

    sleep = gevent.sleep

    def loop() -> None:
        for _ in range(n):
            sleep(0)

    gevent.spawn(loop).get()


def _eventlet_sleep0(n: int) -> None:
    import eventlet

    sleep = eventlet.sleep

    def loop() -> None:
        for _ in range(n):
            sleep(0)

    eventlet.spawn(loop).wait()


async def _aio_sleep0(n: int) -> None:
    sleep = asyncio.sleep
    for _ in range(n):
        await sleep(0)


CASES: dict[str, Case] = {
    "spawn_join": Case(
        n=100_000,
        unit="spawn+joins",
        peers={
            "nettools": _nettools_spawn_join,
            "gevent": _gevent_spawn_join,
            "eventlet": _eventlet_spawn_join,
            "asyncio": on_asyncio(_aio_spawn_join),
            "uvloop": on_uvloop(_aio_spawn_join),
        },
    ),
    "queue_pingpong": Case(
        n=200_000,
        unit="round trips",
        peers={
            "nettools": _nettools_queue_pingpong,
            "gevent": _gevent_queue_pingpong,
            "eventlet": _eventlet_queue_pingpong,
            "asyncio": on_asyncio(_aio_queue_pingpong),
            "uvloop": on_uvloop(_aio_queue_pingpong),
        },
    ),
    "sleep0": Case(
        n=200_000,
        unit="sleep(0) calls",
        peers={
            "nettools": _nettools_sleep0,
            "gevent": _gevent_sleep0,
            "eventlet": _eventlet_sleep0,
            "asyncio": on_asyncio(_aio_sleep0),
            "uvloop": on_uvloop(_aio_sleep0),
        },
    ),
}
