"""The nettools command through its real entry point."""

from __future__ import annotations

import pytest
from helpers.cli import run_cli

import nettools

pytestmark = pytest.mark.timeout(60)

COMMANDS = ("echo", "chat", "forward", "serve", "wschat", "fetch", "crawl", "crawl-worker",
            "zmq", "feeds")


def test_version_flag_prints_version() -> None:
    res = run_cli("--version")
    assert res.returncode == 0
    assert res.stdout.strip() == f"nettools {nettools.__version__}"


def test_help_lists_commands_with_examples() -> None:
    res = run_cli("--help")
    assert res.returncode == 0
    assert "Usage" in res.stdout
    commands, _, examples = res.stdout.partition("Examples:")
    for command in COMMANDS:
        assert f"\n  {command} " in commands, command
        assert f"\n    nettools {command} " in examples, command


def test_unknown_command_is_a_usage_error_without_traceback() -> None:
    res = run_cli("no-such-command")
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.splitlines() == [
        "nettools: No such command 'no-such-command'. (see 'nettools --help')"
    ]
