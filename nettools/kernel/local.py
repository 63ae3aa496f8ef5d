"""Greenthread-local storage: ``local()`` attributes are private to each greenthread."""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from greenlet import getcurrent

__all__ = ["local"]


class local:
    """Like ``threading.local``, per greenthread.

    Subclasses may define ``__init__``; it runs again, with the constructor's
    arguments, the first time each greenthread touches the object.
    """

    __slots__ = ("_local__args", "_local__dicts", "__weakref__")

    def __new__(cls, *args: Any, **kw: Any) -> local:
        if (args or kw) and cls.__init__ is local.__init__:
            raise TypeError("Initialization arguments are not supported")
        self = object.__new__(cls)
        object.__setattr__(self, "_local__args", (args, kw))
        # greenlet -> attribute dict; entries vanish with their greenlet.
        dicts: WeakKeyDictionary = WeakKeyDictionary()
        dicts[getcurrent()] = {}
        object.__setattr__(self, "_local__dicts", dicts)
        return self

    def __init__(self, *args: Any, **kw: Any) -> None:
        pass

    def _local__dict(self) -> dict:
        dicts = object.__getattribute__(self, "_local__dicts")
        g = getcurrent()
        d = dicts.get(g)
        if d is None:
            d = dicts[g] = {}
            args, kw = object.__getattribute__(self, "_local__args")
            init = type(self).__init__
            if init is not local.__init__:
                init(self, *args, **kw)
        return d

    def __getattribute__(self, name: str) -> Any:
        if name.startswith("_local__") or name == "__class__":
            return object.__getattribute__(self, name)
        d = local._local__dict(self)
        if name == "__dict__":
            return d
        try:
            return d[name]
        except KeyError:
            pass
        try:
            return object.__getattribute__(self, name)
        except AttributeError:
            raise AttributeError(
                f"{type(self).__name__!r} object has no attribute {name!r}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_local__") or name == "__dict__":
            raise AttributeError(
                f"{type(self).__name__!r} object attribute {name!r} is read-only"
            )
        if isinstance(getattr(type(self), name, None), property):
            object.__setattr__(self, name, value)
            return
        local._local__dict(self)[name] = value

    def __delattr__(self, name: str) -> None:
        if name == "__dict__":
            raise AttributeError(
                f"{type(self).__name__!r} object attribute '__dict__' is read-only"
            )
        try:
            del local._local__dict(self)[name]
        except KeyError:
            raise AttributeError(name) from None
