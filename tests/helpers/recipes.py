"""Running the programs of recipes/ in a subprocess, shared by the recipe tests."""

from __future__ import annotations

import os
import subprocess
import sys

from .paths import RECIPES
from .process import Program, run


class Recipe(Program):
    """``recipes/<name> *args`` in a subprocess; killed on leaving the ``with``."""

    def __init__(self, name: str, *args: str) -> None:
        super().__init__(
            [sys.executable, str(RECIPES / name), *args],
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


def run_recipe(name: str, *args: str, timeout: float = 45) -> subprocess.CompletedProcess:
    """``recipes/<name> *args`` to its end."""
    return run([sys.executable, str(RECIPES / name), *args], timeout=timeout)
