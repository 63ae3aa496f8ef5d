"""Monkey patching: make the standard library green, in place or in private copies.

``monkey_patch()`` replaces attributes of the real stdlib modules (``setattr``
on the module objects), so every ``import socket`` anywhere sees the green
objects.  Each green module ``nettools.green.<name>`` lists in ``__patched__``
the names it replaces; a module may instead offer a ``_patch()`` hook (``ssl``
and ``threading`` do) for patching that is more than copying attributes.

Patch as early as possible -- before other modules import ``threading`` or
``ssl`` and keep references to their objects.  ``monkey_patch`` warns, naming
the modules, when it finds such references.

``import_patched(name)`` instead gives one module private green copies of its
imports and leaves the real modules and ``sys.modules`` untouched.
``original(name)`` returns an unpatched copy of a module after patching.
"""

from __future__ import annotations

import importlib
import sys
import warnings
from types import ModuleType
from typing import Any

from .green._importer import fresh_import
from .green.threadview import register_unpatched_threading
from .kernel.hub import get_hub

__all__ = [
    "monkey_patch",
    "import_patched",
    "inject",
    "is_monkey_patched",
    "original",
    "already_patched",
]

#: monkey_patch keyword -> (stdlib module, green module) pairs, in patching order.
_GREEN: dict[str, tuple[tuple[str, str], ...]] = {
    "os": (("os", "nettools.green.os"),),
    "select": (("select", "nettools.green.select"),),
    "selectors": (("selectors", "nettools.green.selectors"),),
    "socket": (("socket", "nettools.green.socket"),),
    "ssl": (("ssl", "nettools.green.ssl"),),
    "thread": (("_thread", "nettools.green._thread"), ("threading", "nettools.green.threading")),
    "time": (("time", "nettools.green.time"),),
    "queue": (("queue", "nettools.green.queue"),),
    "subprocess": (("subprocess", "nettools.green.subprocess"),),
    "builtins": (("builtins", "nettools.green.builtins"),),
}
#: The keys that stand for standard modules replaced attribute by attribute, which
#: ``import_patched`` substitutes and ``original`` rebuilds from.
_MODULE_KEYS = (
    "os", "select", "selectors", "socket", "ssl", "thread", "time", "queue", "subprocess",
)  # fmt: skip
#: Keys patched only when named (``builtins=True``), as in eventlet.
_OFF_BY_DEFAULT = {"builtins"}
#: eventlet's name for the group each key belongs to (``already_patched``).
_EVENTLET_GROUP: dict[str, str | None] = {
    "os": "os",
    "select": "select",
    "selectors": "select",
    "socket": "socket",
    "ssl": None,  # eventlet's "socket" stands for socket (with its ssl) only
    "thread": "thread",
    "queue": "thread",
    "time": "time",
    "subprocess": "subprocess",
    "builtins": "builtins",
}
#: A key patched on request also patches these unless they are passed as False:
#: green threads must not block in a real queue, nor green selects in a real selector.
_IMPLIES = {"thread": ("queue",), "select": ("selectors",)}
#: Modules whose pristine copy is the module's namespace with the originals put
#: back (extension modules, and os whose patched names are all C functions).
_COPY_NAMESPACE = {"_thread", "time", "select", "os", "builtins"}
#: Order for building pristine copies: each may import the ones before it.
_PRISTINE_ORDER = (
    "_thread", "time", "select", "os", "selectors", "socket", "ssl", "threading", "queue",
    "subprocess",
)  # fmt: skip

_MISSING = object()
#: stdlib module name -> {attribute: value before patching (or _MISSING)}
_originals: dict[str, dict[str, Any]] = {}
_patched: set[str] = set()
_pristine: dict[str, ModuleType] = {}
#: What is patched, under eventlet's names for the groups of modules (``socket``
#: stands for socket and ssl, ``thread`` for the thread modules and queue,
#: ``select`` for select and selectors): name -> True, as eventlet's.
already_patched: dict[str, bool] = {}


def monkey_patch(
    all: bool | None = None,
    os: bool | None = None,
    select: bool | None = None,
    socket: bool | None = None,
    thread: bool | None = None,
    time: bool | None = None,
    ssl: bool | None = None,
    subprocess: bool | None = None,
    queue: bool | None = None,
    selectors: bool | None = None,
    builtins: bool | None = None,
    psycopg: bool | None = None,
    MySQLdb: bool | None = None,  # noqa: N803 - eventlet's keyword
) -> None:
    """Replace blocking parts of the standard library with green ones, in place.

    As in eventlet: with no arguments everything is patched; naming modules
    ``True`` patches only those (``thread`` brings ``queue``, ``select`` brings
    ``selectors``, unless those are passed as False); naming one ``False``
    patches everything else.  ``all=True``/``False`` sets the default for
    modules not named.  Calling it again patches only what is not patched yet.

    eventlet's other keywords: ``builtins=True`` (off unless named) makes
    ``open()`` tell the hub about each file it opens; ``psycopg`` and
    ``MySQLdb`` are accepted and do nothing: nettools has no green database
    drivers (run their calls through ``tpool`` or a ``db_pool.ConnectionPool``).
    """
    del psycopg, MySQLdb  # accepted for eventlet's programs; see the docstring
    flags = {
        "os": os,
        "select": select,
        "selectors": selectors,
        "socket": socket,
        "ssl": ssl,
        "thread": thread,
        "time": time,
        "queue": queue,
        "subprocess": subprocess,
        "builtins": builtins,
    }
    default = all if all is not None else True not in flags.values()
    wanted = {
        k
        for k, v in flags.items()
        if (default and k not in _OFF_BY_DEFAULT if v is None else v)
    }
    for key, implied in _IMPLIES.items():
        if flags[key]:
            wanted.update(k for k in implied if flags[k] is not False)
    todo = [k for k in _GREEN if k in wanted and k not in _patched]
    if not todo:
        return
    # Make this thread's hub now, while select.epoll and friends are the real ones.
    get_hub()
    green = _load_green(todo, explicit={k for k, v in flags.items() if v})
    todo = [k for k in todo if k in green]
    _warn_late_imports(todo)
    for key in todo:
        for stdname, gmod in green[key]:
            _patch_module(stdname, gmod)
        _patched.add(key)
        group = _EVENTLET_GROUP[key]
        if group is not None:
            already_patched[group] = True


def _load_green(todo: list[str], explicit: set[str]) -> dict[str, list[tuple[str, ModuleType]]]:
    """Import the green modules first: some are copies made from the unpatched modules."""
    loaded: dict[str, list[tuple[str, ModuleType]]] = {}
    for key in todo:
        try:
            loaded[key] = [(std, importlib.import_module(g)) for std, g in _GREEN[key]]
        except ImportError:
            if key in explicit:
                raise
            # Not available in this build (e.g. ssl without OpenSSL): leave it alone.
    return loaded


def _patch_module(stdname: str, gmod: ModuleType) -> None:
    real = importlib.import_module(stdname)
    saved = _originals.setdefault(stdname, {})
    for name in getattr(gmod, "__patched__", ()):
        if name not in saved:
            saved[name] = getattr(real, name, _MISSING)
    hook = getattr(gmod, "_patch", None)
    if callable(hook):
        hook()
        return
    for name in getattr(gmod, "__patched__", ()):
        setattr(real, name, getattr(gmod, name))


def is_monkey_patched(module: ModuleType | str) -> bool:
    """True if ``module`` (an object, a stdlib name or a ``monkey_patch`` keyword) is patched."""
    name = module if isinstance(module, str) else getattr(module, "__name__", "")
    if name in _patched:
        return True
    return any(name == std for key in _patched for std, _ in _GREEN[key])


# ------------------------------------------------------------------ originals


def original(name: str) -> ModuleType:
    """An unpatched copy of module ``name``, usable after ``monkey_patch``.

    It is a separate module object: extension modules (``time``, ``select``,
    ``_thread``) and ``os`` are copies of the module namespace with the
    original attributes restored; pure-Python modules are imported afresh with
    the pristine copies of any patched modules they import.
    """
    mod = _pristine.get(name)
    if mod is None:
        mod = _pristine[name] = _make_pristine(name)
    return mod


def _make_pristine(name: str) -> ModuleType:
    if name in _COPY_NAMESPACE:
        real = importlib.import_module(name)
        copy = ModuleType(name, real.__doc__)
        copy.__dict__.update(vars(real))
        for attr, value in _originals.get(name, {}).items():
            if value is _MISSING:
                copy.__dict__.pop(attr, None)
            else:
                copy.__dict__[attr] = value
        return copy
    before = _PRISTINE_ORDER[: _PRISTINE_ORDER.index(name)] if name in _PRISTINE_ORDER else None
    deps = [
        std
        for key in _patched
        if key in _MODULE_KEYS
        for std, _ in _GREEN[key]
        if std != name and (before is None or std in before)
    ]
    mod = fresh_import(name, {std: original(std) for std in deps})
    if name == "threading":
        register_unpatched_threading(mod)  # its threads stay visible to current_thread()
    return mod


# --------------------------------------------------------------- import_patched


def import_patched(
    module_name: str, *additional_modules: tuple[str, ModuleType], **kw: bool | ModuleType
) -> ModuleType:
    """Import a private copy of ``module_name`` whose imports get the green modules.

    The real modules and ``sys.modules`` are left as they were.  Green modules
    are substituted for os, select, selectors, socket, ssl, thread (``_thread``
    and ``threading``), time, queue and subprocess; pass e.g. ``socket=False``
    to keep one real.  ``additional_modules`` are ``(name, module)`` pairs
    substituted as well (a keyword may also name a module object).

    Modules the target imports that were already imported are shared with the
    program as usual; to make those green too, patch or substitute them.
    """
    substitutes: dict[str, ModuleType] = {}
    for key in _MODULE_KEYS:
        pairs = _GREEN[key]
        flag = kw.pop(key, None)
        if flag is False:
            continue
        if isinstance(flag, ModuleType):
            substitutes[key] = flag
            continue
        for std, gname in pairs:
            try:
                substitutes[std] = importlib.import_module(gname)
            except ImportError:
                if flag:
                    raise
    for name, value in kw.items():
        if not isinstance(value, ModuleType):
            raise TypeError(f"import_patched() got an unexpected keyword argument {name!r}")
        substitutes[name] = value
    for name, mod in additional_modules:
        substitutes[name] = mod
    return fresh_import(module_name, substitutes)


#: What ``inject`` never copies into ``new_globals``: the names that make a
#: module the module it is.
_OWN_NAMES = frozenset(
    {"__builtins__", "__file__", "__name__", "__spec__", "__loader__", "__package__",
     "__path__", "__cached__"}
)  # fmt: skip


def inject(
    module_name: str, new_globals: dict | None, *additional_modules: tuple[str, ModuleType]
) -> ModuleType:
    """eventlet's ``patcher.inject``, what ``import_patched`` is built on: a private
    copy of ``module_name`` whose imports of the names in ``additional_modules``
    (``(name, module)`` pairs) get those modules -- with none given, the green
    modules ``import_patched`` substitutes.  If ``new_globals`` is a dict, the
    copy's names go into it too (how a green version of a module is written:
    ``inject("ftplib", globals(), ("socket", green_socket))``)."""
    if additional_modules:
        module = fresh_import(module_name, dict(additional_modules))
    else:
        module = import_patched(module_name)
    if new_globals is not None:
        new_globals.update(
            (name, value) for name, value in vars(module).items() if name not in _OWN_NAMES
        )
    return module


# ------------------------------------------------------------- late imports


def _is_users(modname: str) -> bool:
    """Modules whose early references we warn about: the program's, not stdlib's or ours."""
    top = modname.partition(".")[0]
    return top != "nettools" and top not in getattr(sys, "stdlib_module_names", ())


def _holders(match: Any) -> list[str]:
    names = []
    for modname, mod in list(sys.modules.items()):
        if mod is None or not _is_users(modname):
            continue
        try:
            values = list(vars(mod).values())
        except TypeError:
            continue
        if any(match(v) for v in values):
            names.append(modname)
    return sorted(names)


def _ssl_holders() -> list[str]:
    ssl = sys.modules.get("ssl")
    if ssl is None:
        return []
    classes = (ssl.SSLContext, ssl.SSLSocket)

    def match(v: Any) -> bool:
        if isinstance(v, type):
            return v in classes or issubclass(v, classes)
        return isinstance(v, classes)

    return _holders(match)


def _thread_holders() -> list[str]:
    import _thread
    import threading

    factories = {id(_thread.allocate_lock), id(_thread.get_ident), id(_thread.start_new_thread)}
    factories.update(id(f) for f in (threading.Lock, threading.get_ident, threading.local))
    if getattr(threading, "_CRLock", None) is not None:
        factories.add(id(threading._CRLock))
    instances = (
        type(_thread.allocate_lock()),
        threading.Condition,
        threading.Semaphore,
        threading.Event,
        _thread._local,
    )
    if getattr(threading, "_CRLock", None) is not None:
        instances += (threading._CRLock,)

    def match(v: Any) -> bool:
        return id(v) in factories or isinstance(v, instances)

    return _holders(match)


def _warn_late_imports(todo: list[str]) -> None:
    if "ssl" in todo:
        mods = _ssl_holders()
        if mods:
            warnings.warn(
                "monkey_patch(): these modules took references to ssl.SSLContext or "
                f"ssl.SSLSocket before ssl was patched: {', '.join(mods)}. What they "
                "build from those classes may not be green; call "
                "nettools.monkey_patch() before importing them.",
                RuntimeWarning,
                stacklevel=3,
            )
    if "thread" in todo:
        mods = _thread_holders()
        if mods:
            warnings.warn(
                "monkey_patch(): these modules created real locks or thread-locals, or "
                f"kept the real lock/thread-local factories, before threading was "
                f"patched: {', '.join(mods)}. Those objects stay real (they block the "
                "OS thread, or are shared by all greenthreads); call "
                "nettools.monkey_patch() before importing them.",
                RuntimeWarning,
                stacklevel=3,
            )
