"""Running the nettools command in a subprocess, shared by the CLI tests."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys


def clean_env(extra: dict | None = None) -> dict:
    """The environment without stray NETTOOLS_* settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NETTOOLS_")}
    env.update(extra or {})
    return env


def stop_summary(stderr: str, service: str | None = None) -> dict:
    """The JSON summary a stopped service prints last on stderr (``service``'s, if given)."""
    lines = stderr.strip().splitlines()
    assert lines, "nothing on stderr"
    event = json.loads(lines[-1])
    assert event["event"] == "stopped", lines[-1]
    if service is not None:
        assert event["service"] == service, lines[-1]
    return event


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nettools", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(env),
    )


class Cli:
    """A ``nettools`` server in a subprocess; killed on leaving the ``with``."""

    def __init__(self, *args: str, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nettools", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(env),
        )
        self.ready_line = ""

    def __enter__(self) -> Cli:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate(timeout=10)

    def ready(self, timeout: float = 20) -> dict:
        """Wait for the JSON ready line on stdout and return it parsed."""
        readable, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not readable:
            self.proc.kill()
            _, err = self.proc.communicate(timeout=10)
            raise AssertionError(f"no ready line within {timeout}s; stderr: {err}")
        self.ready_line = self.proc.stdout.readline()
        assert self.ready_line, f"exited early: {self.proc.communicate(timeout=10)[1]}"
        event = json.loads(self.ready_line)
        assert event["event"] == "listening"
        return event

    def tcp_address(self, timeout: float = 20) -> tuple[str, int]:
        event = self.ready(timeout)
        host, _, port = event["address"].rpartition(":")
        return host, int(port)

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM, then wait for the exit: ``(returncode, stdout, stderr)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the exit (of a server already told to stop): ``(returncode, stdout, stderr)``.

        A second SIGTERM could land while the interpreter exits, when the default
        handler is back, and kill it."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err
