"""Which hub a thread gets: ``use_hub``, NETTOOLS_HUB / EVENTLET_HUB, eventlet's hub names.

nettools has one hub, on epoll (or poll(2) where epoll is missing, or when
asked).  eventlet has several -- ``epolls``, ``poll``, ``selects``, ``kqueue``,
``asyncio`` (and ``zeromq`` before 0.20) -- and programs name them; each name
stands for nettools' hub, on the poller closest to what it named.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable
from functools import partial
from typing import Any

from .hub import Hub, set_hub_factory

__all__ = ["HUB_NAMES", "use_hub", "get_default_hub", "hub_factory", "hub_from_environment"]

#: eventlet's hub names, and the poller nettools' one hub uses for each.
HUB_NAMES = {
    "epolls": "epoll",
    "poll": "poll",
    "selects": "poll",
    "kqueue": None,
    "asyncio": None,
    "hub": None,
    # eventlet before 0.20 needed a hub of its own for green zmq; nettools' one does it
    "zeromq": None,
}


def hub_from_environment() -> Callable[[], Any]:
    """What ``NETTOOLS_HUB`` (or else eventlet's ``EVENTLET_HUB``) asks for."""
    name = os.environ.get("NETTOOLS_HUB") or os.environ.get("EVENTLET_HUB") or None
    return hub_factory(name) if name else Hub


def hub_factory(name: Any) -> Callable[[], Any]:
    """A hub maker for ``use_hub``'s argument."""
    if name is None:
        return Hub
    if isinstance(name, type):
        return name
    if not isinstance(name, str):  # a module with a Hub class, as eventlet's hub modules
        return name.Hub
    short = name.rpartition(".")[2]
    if short in HUB_NAMES:
        return partial(Hub, HUB_NAMES[short])
    if short == "epoll":
        return partial(Hub, short)
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr or "Hub")


def use_hub(hub: Any = None) -> None:
    """Choose the hub that threads make from now on, and this thread's next one.

    ``hub`` is one of eventlet's hub names (``"epolls"``, ``"poll"``,
    ``"selects"``, ``"kqueue"``, ``"asyncio"``: all are nettools' one hub, on
    epoll or on poll(2)), a ``"module:Class"`` path, a module with a ``Hub``
    class, a class, or None for the default.  As in eventlet the calling
    thread's current hub is dropped, so call it before anything waits.
    """
    set_hub_factory(hub_factory(hub))


def get_default_hub() -> type:
    """The hub class threads get unless ``use_hub`` says otherwise."""
    return Hub
