"""nettools: green threads on greenlet with an epoll hub, and ready-made network tools.

The names follow eventlet's, so eventlet programs carry over::

    import nettools

    def fetch(n):
        nettools.sleep(0.01)
        return n * n

    pool = nettools.GreenPool(100)
    print(sum(pool.imap(fetch, range(1000))))
"""

from ._version import __version__
from .kernel import tpool
from .kernel.fdwait import IOClosed
from .kernel.greenthread import (
    GreenletExit,
    GreenThread,
    getcurrent,
    kill,
    sleep,
    spawn,
    spawn_after,
    spawn_after_local,
    spawn_n,
)
from .kernel.hub import DeadlockError, get_hub, trampoline
from .kernel.local import local
from .kernel.pool import GreenPile, GreenPool
from .kernel.queue import Empty, Full, LifoQueue, LightQueue, PriorityQueue, Queue
from .kernel.sync import BoundedSemaphore, Event, Lock, Semaphore
from .kernel.timeout import Timeout, with_timeout
from .net import Server, StopServe, connect, listen, serve, wrap_ssl
from .patcher import import_patched, is_monkey_patched, monkey_patch

__all__ = [
    "__version__",
    "BoundedSemaphore",
    "DeadlockError",
    "Empty",
    "Event",
    "Full",
    "GreenPile",
    "GreenPool",
    "GreenThread",
    "GreenletExit",
    "IOClosed",
    "Server",
    "StopServe",
    "connect",
    "listen",
    "serve",
    "wrap_ssl",
    "LifoQueue",
    "LightQueue",
    "Lock",
    "PriorityQueue",
    "Queue",
    "Semaphore",
    "Timeout",
    "get_hub",
    "getcurrent",
    "import_patched",
    "is_monkey_patched",
    "kill",
    "local",
    "monkey_patch",
    "sleep",
    "spawn",
    "spawn_after",
    "spawn_after_local",
    "spawn_n",
    "tpool",
    "trampoline",
    "with_timeout",
]
