"""Green ``selectors``: the standard selectors, built on the green ``select``.

The concrete classes subclass the standard ones and only swap the underlying
call (``select.select``) or object (``select.poll``/``select.epoll``) for the
green one, so ``select(timeout)`` parks the greenthread while ``SelectorKey``,
``BaseSelector`` and ``isinstance`` checks stay the standard ones.
"""

from __future__ import annotations

import selectors as _selectors
from selectors import *  # noqa: F403 - a drop-in replacement re-exports everything

from . import select as _gselect


class SelectSelector(_selectors.SelectSelector):
    """Selector based on the green ``select.select``."""

    _select = staticmethod(_gselect.select)


class PollSelector(_selectors.PollSelector):
    """Selector based on the green ``select.poll``."""

    _selector_cls = staticmethod(_gselect.poll)


__patched__ = ["SelectSelector", "PollSelector", "DefaultSelector"]

if hasattr(_selectors, "EpollSelector"):

    class EpollSelector(_selectors.EpollSelector):
        """Selector based on the green ``select.epoll``."""

        _selector_cls = _gselect.epoll

    __patched__.append("EpollSelector")
    DefaultSelector = EpollSelector
else:  # pragma: no cover - non-Linux
    DefaultSelector = PollSelector
