"""Pools of reusable items: connections, clients, handles that are costly to make.

``Pool(max_size=4, create=make_conn)`` hands items out with ``get()`` (making
one while fewer than ``max_size`` exist, else waiting for one to be ``put``
back) or, better, ``with pool.item() as conn:``.  Items come back in the order
they were put (``order_as_stack=True``: the most recent first, which keeps
the rest idle long enough for their server to drop them, or a subclass to).
Subclass and override ``create`` instead of passing it, as in eventlet.

Items are handed straight from ``put`` to a greenthread waiting in ``get``, so
a waiter never loses its turn to a newcomer; a waiter that times out or is
killed simply leaves the line.
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from .queue import Full, LightQueue

__all__ = ["Pool", "TokenPool", "Token"]


class Pool:
    """At most ``max_size`` items, made on demand (``min_size`` of them at once).

    ``free()`` is how many ``get`` calls would not wait, ``waiting()`` how
    many greenthreads wait in ``get``, ``current_size`` how many items exist
    (handed out or idle), ``free_items`` the idle ones.
    """

    def __init__(
        self,
        min_size: int = 0,
        max_size: int = 4,
        order_as_stack: bool = False,
        create: Callable[[], Any] | None = None,
    ) -> None:
        self.min_size = min_size
        self.max_size = max_size
        self.order_as_stack = order_as_stack
        self.current_size = 0
        self.free_items: deque = deque()
        #: Where ``get`` waits: a channel, so a ``put`` hands its item over.
        self.channel = LightQueue(0)
        if create is not None:
            self.create = create  # type: ignore[method-assign]
        for _ in range(min_size):
            self.current_size += 1
            self.free_items.append(self.create())

    def get(self) -> Any:
        """An item: an idle one, a new one while under ``max_size``, or the next
        one ``put`` back (waiting for it)."""
        if self.free_items:
            return self.free_items.pop() if self.order_as_stack else self.free_items.popleft()
        if self.current_size < self.max_size:
            # Count it before making it: ``create`` may wait, and the greenthreads
            # arriving meanwhile must not make one each.
            self.current_size += 1
            try:
                return self.create()
            except BaseException:
                self.current_size -= 1
                raise
        return self.channel.get()

    def put(self, item: Any) -> None:
        """Give ``item`` back: to a waiting ``get``, to the idle items, or -- when
        the pool was shrunk below its item count -- away."""
        if self.current_size > self.max_size:
            self.current_size -= 1
            return
        if self.channel.getting():
            try:
                # Handed to a waiter, unless others' puts served them all first.
                self.channel.put(item, block=False)
                return
            except Full:
                pass
        self.free_items.append(item)

    @contextlib.contextmanager
    def item(self) -> Iterator[Any]:
        """``with pool.item() as thing:`` -- ``get`` it, and ``put`` it back after."""
        thing = self.get()
        try:
            yield thing
        finally:
            self.put(thing)

    def resize(self, new_size: int) -> None:
        """Change ``max_size``.  Shrinking drops items as they are put back until
        the count fits; growing lets waiters have new items."""
        self.max_size = new_size
        while self.channel.getting() and self.current_size < self.max_size:
            self.current_size += 1
            try:
                item = self.create()
            except BaseException:
                self.current_size -= 1
                raise
            try:
                self.channel.put(item, block=False)
            except Full:
                self.free_items.append(item)

    def free(self) -> int:
        """How many ``get`` calls would return without waiting."""
        return len(self.free_items) + self.max_size - self.current_size

    def waiting(self) -> int:
        """How many greenthreads wait in ``get``."""
        return self.channel.getting()

    def create(self) -> Any:
        """Make a new item: pass ``create=`` or override this."""
        raise NotImplementedError("a Pool needs create= or a create() method")

    def __repr__(self) -> str:
        return (
            f"<{type(self).__name__} size={self.current_size}/{self.max_size} "
            f"free={self.free()} waiting={self.waiting()}>"
        )


class Token:
    """What a ``TokenPool`` hands out: a unique object that stands for a permit."""


class TokenPool(Pool):
    """A pool of ``Token`` objects: a bound on how many greenthreads do
    something at once, where each needs to hold a distinct permit."""

    def create(self) -> Token:
        return Token()
