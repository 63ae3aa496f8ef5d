"""Run monkey-patching tests in fresh interpreters (patching is process-global).

``run_isolated(code)`` runs ``code`` (dedented) with ``sys.executable`` and
returns its stdout; a non-zero exit fails the test with the script's output.
Scripts report with ``print`` and fail with ``assert``; ``OK`` as the last line
is a convention that proves the script ran to its end.  ``run_code(code)``
runs it the same way and returns the process, for tests that judge the exit
code and output themselves.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from .paths import ROOT


def run_code(
    code: str,
    timeout: float = 45,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) in a new interpreter that imports this checkout's
    nettools; return the finished process (text output), whatever its exit code."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), full_env.get("PYTHONPATH", "")) if p
    )
    full_env.setdefault("PYTHONWARNINGS", "default")
    if env:
        full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=cwd,
    )


def run_isolated(
    code: str,
    timeout: float = 45,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    expect_ok: bool = True,
) -> str:
    """Run ``code`` in a new interpreter; return stdout, failing loudly on errors."""
    proc = run_code(code, timeout, env, cwd)
    if proc.returncode != 0:
        raise AssertionError(
            f"isolated script exited with {proc.returncode}\n"
            f"--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    if expect_ok:
        lines = proc.stdout.strip().splitlines()
        assert lines and lines[-1] == "OK", (
            f"script did not finish\n--- stdout ---\n{proc.stdout}\n--- stderr ---\n{proc.stderr}"
        )
    return proc.stdout


def write_module(directory: Path, name: str, source: str) -> Path:
    """Write ``name.py`` (dedented ``source``) into ``directory`` and return its path."""
    path = Path(directory) / f"{name}.py"
    path.write_text(textwrap.dedent(source))
    return path
