"""Load generators: httpload.py (HTTP, in Python), and compiled ones, built on demand into
bench/build/ (which git ignores).

A fresh machine has Python, make and a C compiler, so the benchmark compiles its own client
rather than asking for one to be installed; it rebuilds whenever the source is newer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
BUILD_DIR = HERE.parent / "build"


class BuildError(RuntimeError):
    """The C compiler is missing or rejected the source."""


def build(name: str) -> Path:
    """The path of the executable built from ``bench/loadgen/NAME.c``, compiling it if stale."""
    source = HERE / f"{name}.c"
    binary = BUILD_DIR / name
    if binary.exists() and binary.stat().st_mtime >= source.stat().st_mtime:
        return binary
    cc = os.environ.get("CC") or "gcc"
    if shutil.which(cc) is None:
        raise BuildError(f"C compiler {cc!r} not found (set $CC) to build {source}")
    BUILD_DIR.mkdir(parents=True, exist_ok=True)
    # Compile to a private name, then rename: a reader never sees a half-written binary.
    tmp = binary.with_name(f".{name}.{os.getpid()}")
    result = subprocess.run([cc, "-O2", "-Wall", "-o", str(tmp), str(source)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise BuildError(f"{cc} failed on {source}:\n{result.stderr}")
    tmp.replace(binary)
    return binary


def echoload() -> Path:
    """The echo load generator (see echoload.c for its command line and output)."""
    return build("echoload")
