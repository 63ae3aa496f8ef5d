"""Finding and importing the application ``nettools serve`` serves, from its
``MODULE:APP`` spec, the way ``gunicorn`` does: from the current directory, or
where ``use_app_path`` says (``--chdir``, ``--pythonpath``).  A spec that cannot
be loaded raises ``AppSpecError``, a usage error, whose message says where the
module was looked for.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["AppSpecError", "check_spec", "load_app", "use_app_path"]


class AppSpecError(Exception):
    """A ``MODULE:APP`` that cannot be loaded (a usage error: exit 2)."""



def _split_spec(spec: str) -> tuple[str, str]:
    module, sep, attr = spec.partition(":")
    if not sep or not module or not attr:
        raise AppSpecError(f"expected MODULE:APP (e.g. myapp:app), got {spec!r}")
    return module, attr


def _ensure_cwd_on_path() -> None:
    # As with "python -m", the application lives in the current directory.
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)


def use_app_path(chdir: str | None = None, pythonpath: list[str] | tuple = ()) -> None:
    """Look for the application in ``chdir`` (which becomes the current
    directory, as gunicorn's ``--chdir``) and the ``pythonpath`` directories;
    ``AppSpecError`` if one is not a directory."""
    for path in [chdir] if chdir else []:
        try:
            os.chdir(path)
        except OSError as exc:
            raise AppSpecError(f"--chdir {path}: {exc.strerror or exc}") from None
    for path in reversed(list(pythonpath)):
        if not os.path.isdir(path):
            raise AppSpecError(f"--pythonpath {path}: not a directory")
        path = os.path.abspath(path)
        if path not in sys.path:
            sys.path.insert(0, path)
    _ensure_cwd_on_path()


def _not_found(module: str, exc: BaseException) -> AppSpecError:
    """Where an application that cannot be imported was looked for, and how to say where."""
    cwd = os.getcwd()
    places = [cwd] + [p for p in sys.path if os.path.isdir(p) and p not in (cwd, "")
                      and "site-packages" not in p and not p.startswith(sys.base_prefix)]
    return AppSpecError(
        f"cannot import {module!r}: {exc} (looked in {', '.join(places)}; "
        "give the app's directory with --chdir DIR or --pythonpath DIR)"
    )


def check_spec(spec: str) -> None:
    """Cheap checks that import nothing: the syntax, and that the top-level
    package exists.  (Importing it here would import it unpatched.)"""
    module, _ = _split_spec(spec)
    _ensure_cwd_on_path()
    top = module.split(".")[0]
    try:
        found = importlib.util.find_spec(top)
    except (ImportError, ValueError) as exc:
        raise _not_found(module, exc) from None
    if found is None:
        raise _not_found(module, f"No module named {top!r}")


def load_app(spec: str) -> Callable:
    """Import ``module`` and return ``attr``: a dotted path, or a factory call
    such as ``create_app()``."""
    module_name, attr = _split_spec(spec)
    _ensure_cwd_on_path()
    try:
        obj: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.split(".")[0] == exc.name.split(".")[0]:
            raise _not_found(module_name, exc) from None
        raise AppSpecError(f"cannot import {module_name!r}: {exc}") from None
    except ImportError as exc:
        raise AppSpecError(f"cannot import {module_name!r}: {exc}") from None
    call = attr.endswith("()")
    path = attr[:-2] if call else attr
    for part in path.split("."):
        if not part.isidentifier():
            raise AppSpecError(f"bad attribute {attr!r} in {spec!r}")
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise AppSpecError(f"module {module_name!r} has no attribute {path!r}") from None
    if call:
        if not callable(obj):
            raise AppSpecError(f"{path!r} in {module_name!r} is not callable")
        obj = obj()
    if not callable(obj):
        raise AppSpecError(f"{attr!r} in {module_name!r} is not a WSGI application (not callable)")
    return obj
