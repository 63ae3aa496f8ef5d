"""The nettools command through its real entry point."""

from __future__ import annotations

import subprocess
import sys

import pytest

import nettools

pytestmark = pytest.mark.timeout(60)


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nettools", *args], capture_output=True, text=True, timeout=30
    )


def test_version_flag_prints_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"nettools {nettools.__version__}"


def test_help_lists_commands_with_examples() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    assert "Usage" in res.stdout and "Example" in res.stdout


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    res = run_cli("no-such-command")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
