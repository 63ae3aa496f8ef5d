"""``--log-format json`` on every command: one JSON object per log line, with
stable keys; the default stays human."""

from __future__ import annotations

import json
import re
import socket

import pytest
from helpers.cli import Cli, run_cli

from nettools import cli

pytestmark = pytest.mark.timeout(60)

RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def refused_through(*args: str, env: dict | None = None) -> str:
    """Run a forwarder to a closed port, send it one client, return its stderr."""
    with Cli(*args, env=env) as fwd:
        host, _, port = fwd.ready()["address"].rpartition(":")
        with socket.create_connection((host, int(port)), timeout=10) as c:
            assert c.recv(10) == b""
        code, _, err = fwd.stop()
    assert code == 0
    return err


def test_json_log_lines_have_the_stable_keys():
    dead = closed_port()
    err = refused_through("forward", "--log-format", "json", f"0:{dead}")
    lines = [json.loads(line) for line in err.splitlines() if line.startswith('{"time"')]
    (closed,) = [line for line in lines if line["event"] == "closed"]
    assert list(closed)[:6] == ["time", "level", "service", "event", "message", "logger"]
    assert RFC3339.match(closed["time"])
    assert closed["level"] == "warning" and closed["service"] == "forward"
    assert closed["peer"].startswith("127.0.0.1:")
    assert closed["end"] == "unreachable" and closed["rule"].endswith(f"-> 127.0.0.1:{dead}")
    assert "connection refused" in closed["message"]
    # Every line on stderr is JSON: log lines and the summary alike.
    assert all(json.loads(line) for line in err.splitlines())


def test_the_environment_and_the_global_option_work_too():
    dead = closed_port()
    for args, env in ((("forward", f"0:{dead}"), {"NETTOOLS_LOG_FORMAT": "json"}),
                      (("--log-format", "json", "forward", f"0:{dead}"), None)):  # fmt: skip
        err = refused_through(*args, env=env)
        closed = [json.loads(line) for line in err.splitlines() if '"event": "closed"' in line]
        assert closed and closed[0]["service"] == "forward"


def test_the_default_stays_human():
    err = refused_through("forward", f"0:{closed_port()}")
    assert re.search(r"^nettools: WARNING nettools\.forward: 127\.0\.0\.1:\d+ via ", err, re.M)


def test_a_bad_log_format_is_a_usage_error():
    res = run_cli("echo", "--log-format", "xml")
    assert res.returncode == 2
    assert len(res.stderr.strip().splitlines()) == 1 and "'xml' is not one of" in res.stderr


def test_every_command_takes_log_format(capsys):
    commands = [[info.name] for info in cli.app.registered_commands]
    for group in cli.app.registered_groups:
        commands += [[group.name, info.name] for info in group.typer_instance.registered_commands]
    assert len(commands) > 10
    for path in commands:
        with pytest.raises(SystemExit) as exit:
            cli.main([*path, "--help"])
        assert exit.value.code == 0
        assert "--log-format" in capsys.readouterr().out, path
