"""``eventlet.green``: nettools' green standard modules, under eventlet's names.

``from eventlet.green import socket`` is ``nettools.green.socket`` (and
``eventlet.green.urllib2`` ``nettools.green.urllib.request``: see
``nettools.eventlet.MODULES``).  Only ``zmq`` is a module of this package: nettools'
green zmq with the helpers eventlet's adds to it.
"""

from __future__ import annotations

import importlib
from types import ModuleType


def __getattr__(name: str) -> ModuleType:
    """The module ``eventlet.green.<name>`` stands for."""
    from .. import FALLBACKS, MODULES  # the parent is loaded by now

    target = MODULES.get(f"eventlet.green.{name}") or f"{FALLBACKS['eventlet.green']}.{name}"
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as exc:
        if exc.name is not None and target.startswith(exc.name):
            raise AttributeError(f"module 'eventlet.green' has no attribute {name!r}") from None
        raise
