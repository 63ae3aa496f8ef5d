"""The help of the command groups (zmq, feeds) ends with an example of each command."""

from __future__ import annotations

import pytest
from helpers.cli import run_cli

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize(("group", "commands"), [("zmq", ["proxy", "tcp", "ws"]),
                                                  ("feeds", ["fetch", "serve"])])
def test_a_group_help_shows_an_example_of_each_command(group, commands):
    res = run_cli(group, "--help")
    assert res.returncode == 0
    examples = res.stdout.split("Examples:", 1)[1].splitlines()
    starts = [line.split()[:3] for line in examples if line.strip()]
    assert starts == [["nettools", group, command] for command in commands]
