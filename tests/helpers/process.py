"""A program under test in a subprocess: a nettools command or a recipe.

A server prints one JSON line ``{"event": "listening", ...}`` on stdout when it
is ready; the test waits for that line, talks to the server, then stops it with
SIGTERM and reads what it printed.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess

from .sockets import parse_address


class Program:
    """``argv`` running in a subprocess (text pipes); killed on leaving the ``with``.

    ``group=True`` starts it in a process group of its own, which the exit kills
    whole (a server with worker processes)."""

    def __init__(
        self,
        argv: list[str],
        env: dict | None = None,
        cwd: str | os.PathLike | None = None,
        group: bool = False,
    ) -> None:
        self.proc = subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=cwd,
            start_new_session=group,
        )
        self.group = group
        self.ready_line = ""
        self.ready_event: dict = {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            if self.group:
                os.killpg(self.proc.pid, signal.SIGKILL)
            else:
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
        event = self.ready_event = json.loads(self.ready_line)
        assert event["event"] == "listening"
        return event

    def tcp_address(self, timeout: float = 20) -> tuple[str, int]:
        """Wait for the ready line; the ``(host, port)`` it names."""
        return parse_address(self.ready(timeout)["address"])

    def stop(self, timeout: float = 30) -> tuple[int, str, str]:
        """SIGTERM, then wait for the exit: ``(returncode, stdout, stderr)``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30) -> tuple[int, str, str]:
        """Wait for the exit (of a program that ends by itself or was told to stop):
        ``(returncode, stdout, stderr)``.

        A second SIGTERM could land while the interpreter exits, when the default
        handler is back, and kill it."""
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def run(
    argv: list[str],
    timeout: float = 30,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``argv`` to its end; the finished process (text output)."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd)
