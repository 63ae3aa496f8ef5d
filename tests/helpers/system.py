"""Debian programs the tests drive (chromium, npm, redis-server), installed when missing.

``make test`` installs them (its ``system-deps`` target), so CI never skips; a
test run some other way installs a missing one with ``apt-get`` (through
``sudo -n`` when not root) and skips, saying why, only if that fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

INSTALL_TIMEOUT = 240


def ensure_program(name: str, package: str | None = None, path: str | None = None) -> str:
    """The path of program ``name`` (at ``path`` if given), installing Debian's
    ``package`` (default: ``name``) if it is missing; skips the test if it cannot."""

    def find() -> str | None:
        if path is not None and os.access(path, os.X_OK):
            return path
        return shutil.which(name)

    found = find()
    if found:
        return found
    command = ["apt-get", "install", "-y", "--no-install-recommends", package or name]
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            pytest.skip(f"{name} is not installed, and without root or sudo it cannot be")
        command = ["sudo", "-n", *command]
    try:
        res = subprocess.run(
            command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT,
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"{name} is not installed and installing it failed: {exc}")
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"{name} is not installed and `{' '.join(command)}` failed: {last}")
    found = find()
    if not found:
        pytest.skip(f"apt-get installed {package or name} but no {name} is on PATH")
    return found
