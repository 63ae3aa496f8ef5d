"""Import one package's module names as other, existing modules (a rename, nothing more).

``ModuleAliases({"eventlet": "nettools.eventlet", "eventlet.greenpool":
"nettools.kernel.pool"}).install()`` puts a finder first on ``sys.meta_path``:
from then on ``import eventlet.greenpool`` gives the module
``nettools.kernel.pool`` itself -- the same object, registered under both
names -- so a program written for the other package runs on these modules
unchanged, and whatever it patches on one name it patches on the other.

``from eventlet import greenpool`` imports the submodule under the package's
own name (``nettools.eventlet.greenpool``): such names are served too.

A name with no entry of its own falls back to the nearest aliased package:
``eventlet.green.foo`` is ``nettools.green.foo`` when ``eventlet.green`` maps to
``nettools.green`` and there is such a module.  Anything else under an aliased
prefix fails to import, as it would for a missing module.  A package that is a
module of its own but whose unlisted submodules are another package's says so
in ``fallbacks`` (``{"eventlet.green": "nettools.green"}``).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from collections.abc import Mapping
from types import ModuleType

__all__ = ["ModuleAliases"]


class _SameModule(importlib.abc.Loader):
    """Loads an alias by handing back the module it names, already imported."""

    def __init__(self, target: ModuleType) -> None:
        self.target = target
        self.own_spec = getattr(target, "__spec__", None)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.target

    def exec_module(self, module: ModuleType) -> None:
        # Already executed under its own name.  The import system has just set
        # its __spec__ to the alias's: give it its own back, so that it keeps
        # its name and location for reload, pickle and tracebacks.
        module.__spec__ = self.own_spec


class ModuleAliases(importlib.abc.MetaPathFinder):
    """A meta-path finder that answers ``import ALIAS`` with an existing module.

    ``table`` maps full alias names to full target module names.  The roots of
    the table (names without a dot among its keys) are the prefixes served.
    """

    def __init__(
        self, table: Mapping[str, str], fallbacks: Mapping[str, str] | None = None
    ) -> None:
        self.table = dict(table)
        #: alias package -> the package its unlisted submodules come from, where
        #: that is not the package's own target.
        self.fallbacks = dict(fallbacks or {})
        # ``from eventlet import greenpool`` looks the submodule up by the
        # *module's* name: ``nettools.eventlet.greenpool``.  So an alias whose
        # package is itself an alias is also served under that package's
        # target name.
        for name, target in table.items():
            parent, dot, tail = name.rpartition(".")
            if dot and parent in table:
                also = f"{table[parent]}.{tail}"
                if also != target:
                    self.table.setdefault(also, target)
        self.roots = {name.partition(".")[0] for name in self.table}

    def target_of(self, name: str) -> str | None:
        """The module ``name`` stands for, or None if it is not an alias."""
        if name.partition(".")[0] not in self.roots:
            return None
        exact = self.table.get(name)
        if exact is not None:
            return exact
        head, dot, tail = name.rpartition(".")
        while dot:
            base = self.fallbacks.get(head) or self.table.get(head)
            if base is not None:
                return f"{base}.{tail}"
            head, dot, rest = head.rpartition(".")
            tail = f"{rest}.{tail}"
        return None

    def load(self, name: str) -> ModuleType | None:
        """The module ``name`` stands for, imported; None if ``name`` is not an
        alias or its target does not exist (an import error inside it propagates)."""
        real = self.target_of(name)
        if real is None:
            return None
        try:
            return importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name == real or real.startswith(f"{exc.name}."):
                return None  # no such module: the import fails as for any missing one
            raise

    def find_spec(self, fullname: str, path: object = None, target: object = None) -> object:
        module = self.load(fullname)
        if module is None:
            return None
        is_package = hasattr(module, "__path__")
        return importlib.util.spec_from_loader(fullname, _SameModule(module), is_package=is_package)

    def install(self) -> ModuleAliases:
        """Put this finder first on ``sys.meta_path`` (once); returns self."""
        if self not in sys.meta_path:
            sys.meta_path.insert(0, self)
        return self

    def uninstall(self) -> None:
        """Take the finder off ``sys.meta_path`` (aliases already imported stay)."""
        if self in sys.meta_path:
            sys.meta_path.remove(self)
