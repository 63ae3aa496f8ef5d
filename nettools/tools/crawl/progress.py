"""Watching a crawl while it runs: a snapshot of its progress, handed to a
display at a steady pace from a greenthread of the crawl tool's own.

    with crawler.reporting(lambda p: print(p.done, "of", p.admitted)):
        result = crawler.run()

The display only renders; it never schedules anything itself.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ...kernel.greenthread import sleep, spawn

__all__ = ["Progress", "PROGRESS_EVERY", "reporting"]

#: Seconds between two reports of progress, unless told otherwise.
PROGRESS_EVERY = 0.2


@dataclass(frozen=True)
class Progress:
    """How far a crawl has got."""

    done: int  # links processed
    admitted: int  # links admitted so far (processed or waiting)
    requests: int  # requests made, retries and robots.txt included


@contextlib.contextmanager
def reporting(
    snapshot: Callable[[], Progress], show: Callable[[Progress], None],
    every: float = PROGRESS_EVERY,
) -> Iterator[None]:
    """While in the block, ``show(snapshot())`` at once and then every ``every``
    seconds, from a greenthread that ends with the block."""

    def tick() -> None:
        while True:
            show(snapshot())
            sleep(every)

    ticker = spawn(tick)
    try:
        yield
    finally:
        ticker.kill()
