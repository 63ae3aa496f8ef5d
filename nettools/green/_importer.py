"""Import private copies of modules whose own imports see substitute modules.

``fresh_import("threading", {"_thread": green_thread})`` executes threading.py
again, as a new module object, while ``import _thread`` inside it finds the
green ``_thread``.  This builds the green stdlib modules that are copies of the
real ones, ``patcher.import_patched`` and ``patcher.original``.

Afterwards ``sys.modules`` is as it was, with one exception: a module imported
for the first time *during* the call stays registered if it holds no
reference to a substitute (directly or through another such module), because
a plain import would have registered it too and it must stay a singleton
(``logging``, ``email``...).  Modules that did pick up a substitute are dropped
again and stay private to the copy, so the real program never sees them.
"""

from __future__ import annotations

import _imp
import importlib
import sys
from collections.abc import Mapping
from types import BuiltinFunctionType, FunctionType, ModuleType

__all__ = ["fresh_import", "green_copy", "adopt"]

_MISSING = object()


def fresh_import(name: str, substitutes: Mapping[str, ModuleType]) -> ModuleType:
    """Return a new copy of module ``name`` whose imports see ``substitutes``.

    ``substitutes`` maps module names (as in ``sys.modules``) to the module
    objects the copy should get instead.
    """
    modules = sys.modules
    # Hold the global import lock: another thread importing while the
    # substitutes sit in sys.modules would pick them up.
    _imp.acquire_lock()
    try:
        before = dict(modules)
        subtree = [k for k in before if _in_tree(k, name)]
        for k in subtree:
            del modules[k]
        for k, mod in substitutes.items():
            modules[k] = mod
        try:
            return importlib.import_module(name)
        finally:
            _restore(name, substitutes, before, dict(modules))
    finally:
        _imp.release_lock()


def green_copy(name: str, substitutes: Mapping[str, ModuleType]) -> ModuleType:
    """``fresh_import(name, substitutes)`` whose exception classes are the real
    module's, so that ``except module.Error`` catches what the copy raises."""
    copy = fresh_import(name, substitutes)
    real = importlib.import_module(name)
    for attr, value in vars(real).items():
        if isinstance(value, type) and issubclass(value, BaseException):
            if isinstance(getattr(copy, attr, None), type):
                setattr(copy, attr, value)
    return copy


#: A module's own identity, which a green module keeps when it adopts a copy's names.
_IDENTITY = {"__name__", "__spec__", "__loader__", "__file__", "__cached__", "__builtins__"}


def adopt(namespace: dict, copy: ModuleType, skip: tuple[str, ...] = ()) -> list[str]:
    """Put the names of ``copy`` into ``namespace`` (a green module's globals),
    all but the module's identity and ``skip``; returns the copy's ``__all__``."""
    namespace.update({k: v for k, v in vars(copy).items() if k not in _IDENTITY and k not in skip})
    return list(getattr(copy, "__all__", ()))


def _in_tree(key: str, name: str) -> bool:
    return key == name or key.startswith(name + ".")


def _parent_in(key: str, names: set[str]) -> bool:
    """Whether a package enclosing ``key`` is one of ``names``."""
    parent, dot, _ = key.rpartition(".")
    while dot:
        if parent in names:
            return True
        parent, dot, _ = parent.rpartition(".")
    return False


def _restore(
    name: str, substitutes: Mapping[str, ModuleType], before: dict, after: dict
) -> None:
    modules = sys.modules
    added = [k for k in after if k not in before and k not in substitutes]
    dropped = {k for k in added if _in_tree(k, name)}
    while True:
        more = _tainted([k for k in added if k not in dropped], substitutes, dropped, after)
        # A dropped package takes its new submodules along: left registered,
        # they would be orphans that a fresh import of the package never binds
        # as its attributes (``email.quoprimime`` after ``email`` was dropped).
        gone = dropped | more
        more.update(k for k in added if k not in gone and _parent_in(k, gone))
        if not more:
            break
        dropped |= more
    private = {
        k: after[k] for k in dropped | {k for k in after if _in_tree(k, name)} if after[k]
    }
    for k in set(substitutes) | {k for k in before if _in_tree(k, name)} | dropped:
        old = before.get(k, _MISSING)
        if old is _MISSING:
            modules.pop(k, None)
        else:
            modules[k] = old
        _restore_parent_attribute(k, old, after.get(k))
    _link_private(private, {k: m for k, m in substitutes.items() if "." in k})


def _link_private(private: dict[str, ModuleType], substitutes: dict[str, ModuleType]) -> None:
    """Let the private modules reach each other, and the substitutes for
    submodules, through package attributes.

    ``import http.client`` binds the *real* ``http`` package, whose ``client``
    attribute is (again) the real module.  The private modules get a shallow
    copy of such a package instead, whose attribute is the private submodule
    (or the substitute given for it).
    """
    proxies: dict[str, ModuleType] = {}

    def proxy(pkg: str) -> ModuleType | None:
        if pkg in proxies:
            return proxies[pkg]
        real = sys.modules.get(pkg)
        if real is None:
            return None
        copy = proxies[pkg] = ModuleType(pkg, real.__doc__)
        copy.__dict__.update(vars(real))
        up, dot, child = pkg.rpartition(".")
        if dot:
            outer = private.get(up) or proxy(up)
            if outer is not None:
                outer.__dict__[child] = copy
        return copy

    for key, mod in [*private.items(), *substitutes.items()]:
        parent, dot, child = key.rpartition(".")
        if not dot:
            continue
        outer = private.get(parent) or proxy(parent)
        if outer is not None:
            outer.__dict__[child] = mod
    if not proxies:
        return
    for mod in private.values():
        namespace = mod.__dict__
        for attr, value in list(namespace.items()):
            if isinstance(value, ModuleType):
                replacement = proxies.get(value.__name__)
                if replacement is not None and value is sys.modules.get(value.__name__):
                    namespace[attr] = replacement


def _tainted(
    candidates: list[str], substitutes: Mapping[str, ModuleType], dropped: set[str], after: dict
) -> set[str]:
    """The candidates that refer to a substitute or to a dropped module."""
    bad_ids = {id(m) for m in substitutes.values()} | {id(after[k]) for k in dropped}
    bad_names = set(substitutes) | set(dropped)
    bad_names.update(getattr(m, "__name__", "") for m in substitutes.values())
    tainted: set[str] = set()
    changed = True
    while changed:
        changed = False
        for k in candidates:
            if k in tainted:
                continue
            mod = after[k]
            if mod is not None and _refers(mod, bad_ids, bad_names):
                tainted.add(k)
                bad_ids.add(id(mod))
                bad_names.add(k)
                changed = True
    return tainted


def _refers(mod: ModuleType, bad_ids: set[int], bad_names: set[str]) -> bool:
    prefix = f"{mod.__name__}."
    for attr, value in list(getattr(mod, "__dict__", {}).items()):
        if isinstance(value, ModuleType):
            # A package's own submodule binding is undone when the submodule is
            # dropped (_restore_parent_attribute); it does not taint the package.
            if id(value) in bad_ids and value.__name__ != prefix + attr:
                return True
            continue
        if isinstance(value, (type, FunctionType, BuiltinFunctionType)):
            owner = getattr(value, "__module__", None)
        else:
            owner = getattr(type(value), "__module__", None)
        if owner in bad_names:
            return True
    return False


def _restore_parent_attribute(key: str, old: object, new: object) -> None:
    """Undo the ``package.child = module`` binding an import made on the parent."""
    parent_name, dot, child = key.rpartition(".")
    if not dot:
        return
    parent = sys.modules.get(parent_name)
    if parent is None or new is None or getattr(parent, child, None) is not new:
        return
    if old is _MISSING:
        try:
            delattr(parent, child)
        except AttributeError:
            pass
    else:
        setattr(parent, child, old)
