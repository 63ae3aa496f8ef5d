"""Adapters that run an asyncio workload as a case function on asyncio's or uvloop's loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.cases import CaseFn, Result

Workload = Callable[[int], Awaitable[None]]


def _in_loop(new_loop: Callable[[], asyncio.AbstractEventLoop], workload: Workload) -> CaseFn:
    def run(n: int) -> Result:
        async def timed() -> float:
            # Timed from inside the loop so that creating and closing it is not counted:
            # the greenlet peers start their hub once, untimed, during the warm-up.
            start = time.perf_counter()
            await workload(n)
            return time.perf_counter() - start

        loop = new_loop()
        asyncio.set_event_loop(loop)
        try:
            seconds = loop.run_until_complete(timed())
        finally:
            asyncio.set_event_loop(None)
            loop.close()
        return {"ops_per_s": n / seconds, "seconds": seconds}

    return run


def on_asyncio(workload: Workload) -> CaseFn:
    """Case function running ``workload(n)`` on a fresh stock asyncio loop."""
    return _in_loop(asyncio.new_event_loop, workload)


def on_uvloop(workload: Workload) -> CaseFn:
    """Case function running ``workload(n)`` on a fresh uvloop loop."""

    def new_loop() -> asyncio.AbstractEventLoop:
        import uvloop  # imported late: an absent uvloop must only fail the uvloop rows

        return uvloop.new_event_loop()

    return _in_loop(new_loop, workload)
