"""``eventlet.hubs``: the hub functions, re-exported.

eventlet has several hubs (``epolls``, ``poll``, ``selects``, ``kqueue``,
``asyncio``); nettools has one, on epoll or poll(2), and every one of those
names (``use_hub("selects")``, ``eventlet.hubs.epolls``) stands for it.
"""

from __future__ import annotations

from ...kernel.fdwait import IOClosed
from ...kernel.hub import Hub, get_hub, notify_close, notify_opened, trampoline
from ...kernel.hubchoice import get_default_hub, use_hub

__all__ = [
    "Hub",
    "IOClosed",
    "get_default_hub",
    "get_hub",
    "notify_close",
    "notify_opened",
    "trampoline",
    "use_hub",
]
