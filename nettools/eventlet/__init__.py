"""eventlet's names, served by nettools: the compatibility module.

    import nettools.eventlet as eventlet      # a program that changes its import

    python -m nettools.eventlet PROGRAM ARGS   # a program that changes nothing

Everything here is a re-export: nettools keeps each thing in its own layout
(``nettools.kernel``, ``nettools.green``, ``nettools.web``, ...) and this
package only says which eventlet name each one answers to.  ``MODULES`` maps
every eventlet module name to the nettools module that serves it;
``install()`` puts a finder on ``sys.meta_path`` so that ``import eventlet``,
``import eventlet.greenpool``, ``from eventlet.green import urllib2`` ... give
those very modules.  The few eventlet modules that gather names nettools keeps
in several places (``eventlet.hubs``, ``eventlet.greenio``,
``eventlet.support``) are the subpackages of this one, re-exports as well.

The differences that remain, and why, are listed in the README ("Moving from
eventlet").
"""

from __future__ import annotations

import importlib
from types import ModuleType

from greenlet import GreenletExit, getcurrent

from .. import net as convenience
from .. import patcher
from .._version import __version__
from ..aliasing import ModuleAliases
from ..green.ssl import wrap_socket as wrap_ssl
from ..kernel import greenthread, queue, timeout, tpool
from ..kernel import pool as greenpool
from ..kernel import sync as event
from ..kernel import sync as semaphore
from ..kernel.greenthread import kill, sleep, spawn, spawn_after, spawn_after_local, spawn_n
from ..kernel.hub import DeadlockError
from ..kernel.pool import GreenPile, GreenPool
from ..kernel.queue import Queue
from ..kernel.sync import BoundedSemaphore, CappedSemaphore, Event, Semaphore
from ..kernel.timeout import Timeout, is_timeout, with_timeout, wrap_is_timeout
from ..net import StopServe, connect, listen, serve
from ..patcher import import_patched, monkey_patch
from . import hubs, support

__all__ = [
    "MODULES",
    "FALLBACKS",
    "ALIASES",
    "install",
    "__version__",
    "BoundedSemaphore",
    "CappedSemaphore",
    "DeadlockError",
    "Event",
    "GreenPile",
    "GreenPool",
    "GreenletExit",
    "Queue",
    "Semaphore",
    "StopServe",
    "Timeout",
    "connect",
    "convenience",
    "event",
    "getcurrent",
    "greenpool",
    "greenthread",
    "hubs",
    "import_patched",
    "is_timeout",
    "kill",
    "listen",
    "monkey_patch",
    "patcher",
    "queue",
    "semaphore",
    "serve",
    "sleep",
    "spawn",
    "spawn_after",
    "spawn_after_local",
    "spawn_n",
    "support",
    "timeout",
    "tpool",
    "with_timeout",
    "wrap_is_timeout",
    "wrap_ssl",
]

_HUB = "nettools.kernel.hub"

#: eventlet module name -> the nettools module that serves it.  A name not
#: listed falls back to its nearest listed package, or to where ``FALLBACKS``
#: says that package's other modules are (``eventlet.green.X`` is
#: ``nettools.green.X``).
MODULES: dict[str, str] = {
    "eventlet": "nettools.eventlet",
    "eventlet.backdoor": "nettools.backdoor",
    "eventlet.convenience": "nettools.net",
    "eventlet.corolocal": "nettools.kernel.local",
    "eventlet.db_pool": "nettools.dbpool",
    "eventlet.debug": "nettools.debug",
    "eventlet.event": "nettools.kernel.sync",
    "eventlet.greenio": "nettools.eventlet.greenio",
    "eventlet.greenio.base": "nettools.eventlet.greenio",
    "eventlet.greenio.py3": "nettools.eventlet.greenio",
    "eventlet.greenpool": "nettools.kernel.pool",
    "eventlet.greenthread": "nettools.kernel.greenthread",
    "eventlet.hubs": "nettools.eventlet.hubs",
    "eventlet.hubs.hub": _HUB,
    "eventlet.hubs.epolls": _HUB,
    "eventlet.hubs.poll": _HUB,
    "eventlet.hubs.selects": _HUB,
    "eventlet.hubs.timer": _HUB,
    "eventlet.hubs.asyncio": _HUB,
    "eventlet.hubs.kqueue": _HUB,
    "eventlet.lock": "nettools.kernel.sync",
    "eventlet.patcher": "nettools.patcher",
    "eventlet.pools": "nettools.kernel.itempool",
    "eventlet.queue": "nettools.kernel.queue",
    "eventlet.semaphore": "nettools.kernel.sync",
    "eventlet.support": "nettools.eventlet.support",
    "eventlet.support.greenlets": "greenlet",
    # name resolution: nettools resolves with getaddrinfo in the thread pool
    "eventlet.support.greendns": "nettools.eventlet.support.greendns",
    "eventlet.timeout": "nettools.kernel.timeout",
    "eventlet.tpool": "nettools.kernel.tpool",
    "eventlet.websocket": "nettools.eventlet.websocket",
    "eventlet.wsgi": "nettools.web.wsgi",
    # nettools.green's modules, and eventlet's green zmq (see nettools.eventlet.green)
    "eventlet.green": "nettools.eventlet.green",
    "eventlet.green.zmq": "nettools.eventlet.green.zmq",
    # eventlet's Python 2 names for green standard modules
    "eventlet.green.BaseHTTPServer": "nettools.green.http.server",
    "eventlet.green.CGIHTTPServer": "nettools.green.http.server",
    "eventlet.green.SimpleHTTPServer": "nettools.green.http.server",
    "eventlet.green.SocketServer": "nettools.green.socketserver",
    "eventlet.green.Queue": "nettools.green.queue",
    "eventlet.green.httplib": "nettools.green.http.client",
    "eventlet.green.thread": "nettools.green._thread",
    "eventlet.green.urllib2": "nettools.green.urllib.request",
}


#: eventlet package -> the nettools package its modules not in ``MODULES`` come from.
FALLBACKS: dict[str, str] = {"eventlet.green": "nettools.green"}


def __getattr__(name: str) -> ModuleType:
    """``from nettools.eventlet import wsgi`` (any eventlet submodule), without
    ``install()``: the module that serves ``eventlet.<name>``."""
    target = MODULES.get(f"eventlet.{name}")
    if target is None:
        raise AttributeError(f"module 'nettools.eventlet' has no attribute {name!r}")
    return importlib.import_module(target)


def install() -> ModuleAliases:
    """Make ``import eventlet`` (and every eventlet module) give nettools' modules."""
    return ALIASES.install()


#: The finder ``install()`` puts on ``sys.meta_path``; ``ALIASES.load(name)`` is
#: the module an eventlet name stands for, without installing it.
ALIASES = ModuleAliases(MODULES, FALLBACKS)
