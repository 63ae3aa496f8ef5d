"""File objects over non-blocking pipes whose reads and writes park the greenthread."""

from __future__ import annotations

import io
import os
from typing import Any

from ._waits import READ, WRITE, current_hub, wait_fd

__all__ = ["GreenFileIO", "open_pipe"]


class GreenFileIO(io.FileIO):
    """``io.FileIO`` on a non-blocking fd; where the raw call returns None (EAGAIN)
    these methods wait on the hub and retry, so buffered layers work unchanged."""

    def __init__(self, file: Any, mode: str = "r", closefd: bool = True) -> None:
        super().__init__(file, mode, closefd)
        os.set_blocking(self.fileno(), False)

    def readinto(self, buffer: Any) -> int:
        while True:
            n = super().readinto(buffer)
            if n is not None:
                return n
            wait_fd(self.fileno(), READ)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while True:
            data = super().read(size)
            if data is not None:
                return data
            wait_fd(self.fileno(), READ)

    def readall(self) -> bytes:
        chunks = []
        while True:
            data = super().read(io.DEFAULT_BUFFER_SIZE)
            if data is None:
                wait_fd(self.fileno(), READ)
            elif data:
                chunks.append(data)
            else:
                return b"".join(chunks)

    def write(self, data: Any) -> int:
        while True:
            n = super().write(data)
            if n is not None:
                return n
            wait_fd(self.fileno(), WRITE)

    def close(self) -> None:
        if not self.closed and self.closefd:
            hub = current_hub()
            if hub is not None:
                hub.notify_close(self.fileno())
        super().close()


def open_pipe(fd: Any, mode: str = "r", buffering: int = -1, *args: Any, **kwargs: Any) -> Any:
    """``io.open`` that gives green file objects for pipe fds opened ``rb``/``wb``."""
    if not isinstance(fd, int) or mode not in ("rb", "wb") or args or kwargs:
        return open(fd, mode, buffering, *args, **kwargs)
    raw = GreenFileIO(fd, mode[0])
    if buffering == 0:
        return raw
    if buffering in (-1, 1):  # line buffering means nothing for binary files
        buffering = io.DEFAULT_BUFFER_SIZE
    cls = io.BufferedReader if mode == "rb" else io.BufferedWriter
    return cls(raw, buffering)
