"""``eventlet.green``: nettools' green standard modules, under eventlet's names.

``from eventlet.green import socket`` is ``nettools.green.socket`` (and
``eventlet.green.urllib2`` ``nettools.green.urllib.request``: see
``nettools.eventlet.MODULES``).  Only ``zmq`` is a module of this package: nettools'
green zmq with the helpers eventlet's adds to it.
"""

from __future__ import annotations

from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    """The module ``eventlet.green.<name>`` stands for."""
    from .. import ALIASES  # the parent is loaded by now

    module = ALIASES.load(f"eventlet.green.{name}")
    if module is None:
        raise AttributeError(f"module 'eventlet.green' has no attribute {name!r}")
    return module
