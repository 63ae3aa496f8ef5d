"""A drop-in green ``zmq`` (pyzmq): blocking calls wait on the hub, never on the OS thread.

``from nettools.green import zmq`` (or ``from nettools import zmq``) gives pyzmq's whole
namespace -- constants, ``ZMQError``, ``Again``, ``Frame``, ``zmq_version``... -- with green
``Context``, ``Socket``, ``Poller``, ``select``, ``proxy``, ``proxy_steerable`` and ``device``.
``Socket`` subclasses ``zmq.Socket``: ``send``/``recv`` (and ``recv_into``) are green, and the
helpers pyzmq builds on them (``send_multipart``, ``send_string``, ``send_json``,
``send_pyobj``, their ``recv_`` twins, ``send_serialized``...) are green through them.
``NOBLOCK`` behaves as in pyzmq; ``RCVTIMEO``/``SNDTIMEO`` raise ``zmq.Again`` on time;
closing a socket wakes its waiters, whose call then raises pyzmq's ``ZMQError(ENOTSOCK)``.
``Context.term()`` runs in the thread pool, so a greenthread blocked on a socket gets
``ContextTerminated`` while the hub keeps running, as a blocked thread would with pyzmq.

The modules behind it:

* ``watch``: how a green socket waits on libzmq's ``ZMQ_FD`` without losing a wake-up
  (the rules every other module follows);
* ``sockets``: ``Socket`` and ``Context``;
* ``polling``: ``Poller`` and ``select``;
* ``proxying``: the proxy loop behind ``proxy``, ``proxy_steerable`` and ``device``;
* ``endpoints``: not pyzmq's -- ``bind:URL``/``connect:URL`` endpoints and opening sockets
  on them, for the services built on green zmq.
"""

from __future__ import annotations

from typing import Any

import zmq as _zmq
from zmq import *  # noqa: F403 - a drop-in module re-exports everything

# The green names, imported after the star import so that they win over pyzmq's.
from .polling import Poller, select  # noqa: F401
from .proxying import PROXY_BURST, device, proxy, proxy_steerable  # noqa: F401
from .sockets import Context, Socket  # noqa: F401

__all__ = list(_zmq.__all__)
for _name in ("proxy_steerable", "select"):
    if _name not in __all__:
        __all__.append(_name)


def __getattr__(name: str) -> Any:
    """Anything else pyzmq offers (submodules such as ``zmq.error``, private helpers)."""
    return getattr(_zmq, name)
