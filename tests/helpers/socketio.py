"""Socket.IO for the tests: python-socketio clients, the official JavaScript client
from npm, and a Redis server (Debian's) as the message queue of several workers."""

from __future__ import annotations

import queue
import shutil
import subprocess
import tarfile
import time
from pathlib import Path
from typing import Any

from .process import Program
from .system import ensure_program

T = 10  # seconds any single client-side wait may take
#: The JavaScript client the recipe serves: the npm package, major version 4
#: (the protocol python-socketio 5 speaks).
CLIENT_PACKAGE = "socket.io-client@4"


class ChatClient:
    """A python-socketio client of the Socket.IO chat recipe; events it receives
    (``notice``, ``message``, ``users``) queue up for ``expect``."""

    def __init__(self, url: str, transports: list[str]) -> None:
        import socketio

        self.sio = socketio.Client(reconnection=False)
        self.events: queue.Queue = queue.Queue()
        for kind in ("notice", "message", "users"):
            self.sio.on(kind, self._receiver(kind))
        self.sio.connect(url, transports=transports, wait_timeout=T)

    def _receiver(self, kind: str) -> Any:
        return lambda data: self.events.put((kind, data))

    @property
    def transport(self) -> str:
        return self.sio.transport()

    def join(self, name: str, room: str) -> dict:
        return self.sio.call("join", {"name": name, "room": room}, timeout=T)

    def say(self, text: str) -> dict:
        return self.sio.call("message", {"text": text}, timeout=T)

    def expect(self, kind: str, **fields: Any) -> dict:
        """The first queued ``kind`` event whose data has ``fields``; others are dropped."""
        deadline = time.monotonic() + T
        while True:
            left = deadline - time.monotonic()
            try:
                got, data = self.events.get(timeout=max(left, 0.001))
            except queue.Empty:
                raise AssertionError(f"no {kind} {fields} within {T}s") from None
            if got == kind and all(data.get(k) == v for k, v in fields.items()):
                return data

    def close(self) -> None:
        self.sio.disconnect()


def fetch_client_js(dest: Path) -> Path:
    """``socket.io.min.js`` of the npm package, unpacked into ``dest``."""
    npm = ensure_program("npm")
    dest.mkdir(parents=True, exist_ok=True)
    res = subprocess.run(
        [npm, "pack", CLIENT_PACKAGE, "--pack-destination", str(dest), "--silent"],
        capture_output=True, text=True, timeout=180, cwd=dest,
    )  # fmt: skip
    assert res.returncode == 0, f"npm pack {CLIENT_PACKAGE} failed: {res.stderr}"
    tarball = dest / res.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as tar:
        member = tar.getmember("package/dist/socket.io.min.js")
        with tar.extractfile(member) as src, open(dest / "socket.io.min.js", "wb") as out:
            shutil.copyfileobj(src, out)
    return dest / "socket.io.min.js"


class RedisServer(Program):
    """Debian's redis-server on a unix socket in ``directory`` (no TCP port, nothing
    saved); ``url`` is for python-socketio's RedisManager and redis-py."""

    def __init__(self, directory: Path) -> None:
        binary = ensure_program("redis-server")
        self.path = directory / "redis.sock"
        super().__init__([
            binary, "--port", "0", "--unixsocket", str(self.path), "--save", "",
            "--appendonly", "no", "--dir", str(directory), "--loglevel", "warning",
        ])  # fmt: skip
        deadline = time.monotonic() + T
        while not self.path.exists():
            assert self.proc.poll() is None, self.proc.communicate(timeout=5)
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    @property
    def url(self) -> str:
        return f"unix://{self.path}"
