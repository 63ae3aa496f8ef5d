"""Running the nettools command in a subprocess, shared by the CLI tests."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from .process import Program, run

#: Nothing may sit between the command and 127.0.0.1.
NO_PROXY = {"no_proxy": "*", "NO_PROXY": "*", "http_proxy": "", "HTTP_PROXY": ""}


def clean_env(extra: dict | None = None) -> dict:
    """The environment without stray NETTOOLS_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETTOOLS_")}
    env.update(extra or {})
    return env


def last_json(output: str) -> dict:
    """The last line of ``output`` parsed as JSON: the summary a command prints last."""
    lines = output.strip().splitlines()
    assert lines, "no output"
    return json.loads(lines[-1])


def stop_summary(stderr: str, service: str | None = None) -> dict:
    """The JSON summary a stopped service prints last on stderr (``service``'s, if given)."""
    event = last_json(stderr)
    assert event["event"] == "stopped", event
    if service is not None:
        assert event["service"] == service, event
    return event


def run_cli(
    *args: str,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: float = 30,
) -> subprocess.CompletedProcess:
    """``nettools *args`` to its end."""
    return run([sys.executable, "-m", "nettools", *args], timeout, clean_env(env), cwd)


class Cli(Program):
    """A ``nettools`` server in a subprocess; killed on leaving the ``with``."""

    def __init__(
        self,
        *args: str,
        env: dict | None = None,
        cwd: str | os.PathLike | None = None,
        group: bool = False,
    ) -> None:
        super().__init__([sys.executable, "-m", "nettools", *args], clean_env(env), cwd, group)


def interrupted_run(holder, *args: str, env: dict | None = None) -> tuple[int, str, str]:
    """Run ``nettools *args``, SIGINT it once ``holder`` (a ``helpers.wsgi.Holder``)
    holds all its requests, and return ``(returncode, stdout, stderr)``."""
    with Cli(*args, env=env) as cli:
        try:
            assert holder.all_held.wait(20), "the held requests never arrived"
            cli.proc.send_signal(signal.SIGINT)
            out, err = cli.proc.communicate(timeout=20)
        finally:
            holder.released.set()
        return cli.proc.returncode, out, err
