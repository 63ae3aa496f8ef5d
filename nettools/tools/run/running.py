"""What starting one service of a run file gives the runner: ``Started``."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ...kernel.sync import Event

__all__ = ["Started", "closing_on_error", "RUN_METRICS"]

#: Set (true) in the settings a service starts with when the run serves
#: /metrics: what a service counts only for metrics (requests) is counted then.
RUN_METRICS = "run-metrics"


@dataclass
class Started:
    """A service that is running.

    ``stats``: its counts (``summary(service)`` gives the JSON summary).
    ``listeners``: its listening sockets, or the addresses to announce as
    strings (ZeroMQ endpoints), each with the ``extras`` of its ready line.
    ``stop(drain_timeout)``: stop it gracefully.  ``cleanup``: what to close
    once it has stopped.  ``ended``: set if the service can end by itself (a
    zmq proxy told TERMINATE).  For the run's /metrics: ``metrics``, the
    ``Stats`` to read when ``stats`` is not one; ``servers()``, the
    ``net.Server``s whose connections are the service's (default: those
    accepting on its ``listeners``).
    """

    stats: Any
    listeners: list[Any]
    stop: Callable[[float | None], Any]
    extras: list[dict[str, Any]] | None = None
    cleanup: list[Callable[[], Any]] = field(default_factory=list)
    ended: Event | None = None
    metrics: Any = None
    servers: Callable[[], Iterable[Any]] | None = None


def closing_on_error(close: Callable[[], Any], build: Callable[[], Started]) -> Started:
    """``build()``, calling ``close`` (of a listening socket, a ZeroMQ socket
    set) if it raises: a service that fails to start leaves nothing open."""
    try:
        return build()
    except BaseException:
        close()
        raise
