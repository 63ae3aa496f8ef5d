"""A real Redis for the tests: Debian's redis-server, started on a unix socket in a
temporary directory (nothing listens on a TCP port unless asked), persistence off.

    with RedisServer(tmp_path) as redis:
        redis.state  # "unix:///tmp/.../redis.sock?db=0", for --state
        redis.client()  # a plain redis-py client, for looking at the keys

``make test`` installs redis-server (the Makefile's system-deps); a machine
without it and without a way to install it skips these tests.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def redis_server_program() -> str:
    path = shutil.which("redis-server")
    if path is None:
        pytest.skip("redis-server is not installed (make test installs it: apt-get install "
                    "redis-server)")  # fmt: skip
    return path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class RedisServer:
    """redis-server on ``directory``/redis.sock (and on 127.0.0.1:``port`` when given),
    asking for ``password`` when given."""

    def __init__(self, directory: Path, *, port: int = 0, args: tuple[str, ...] = (),
                 password: str | None = None) -> None:  # fmt: skip
        self.directory = Path(directory)
        self.socket = str(self.directory / "redis.sock")
        self.port = port
        self.args = args
        self.password = password
        self.proc: subprocess.Popen | None = None

    @property
    def state(self) -> str:
        return f"unix://{self.socket}?db=0"

    @property
    def tcp_state(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        program = redis_server_program()
        self.directory.mkdir(parents=True, exist_ok=True)
        argv = [program, "--port", str(self.port), "--bind", "127.0.0.1", "--unixsocket",
                self.socket, "--unixsocketperm", "700", "--save", "", "--appendonly", "no",
                "--dir", str(self.directory), "--daemonize", "no", *self.args]  # fmt: skip
        if self.password is not None:
            argv += ["--requirepass", self.password]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for _ in range(1000):
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited: {self.proc.stderr.read().decode()}")
            if os.path.exists(self.socket):
                try:
                    if self.client().ping():
                        return self
                except Exception:  # noqa: BLE001 - not ready yet
                    pass
            time.sleep(0.01)
        raise RuntimeError("redis-server did not start within 10s")

    def client(self) -> Any:
        import redis

        return redis.Redis(unix_socket_path=self.socket, password=self.password)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
