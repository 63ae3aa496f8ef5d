"""File objects over pipes whose reads and writes park the greenthread."""

from __future__ import annotations

import io
import select
import warnings
from typing import Any

from ._waits import READ, WRITE, current_hub, wait_ready

__all__ = ["GreenFileIO", "open_pipe"]

#: A pipe that poll() reports writable takes this many bytes without blocking.
_PIPE_BUF = getattr(select, "PIPE_BUF", 512)


class GreenFileIO(io.FileIO):
    """``io.FileIO`` on a pipe: each call parks until poll() says the fd is ready.

    The fd stays in blocking mode.  O_NONBLOCK belongs to the open file, which
    is shared with any process the pipe end is handed to (``Popen(...,
    stdin=p1.stdout)``), and such a child would fail with EAGAIN.  After the
    wait the real call cannot block: a read returns what is there, and a write
    goes out in pieces of PIPE_BUF bytes, which a writable pipe always takes at
    once.  ``write`` returns when all is written, as on a blocking pipe.  Should
    the fd be non-blocking anyway, a None (EAGAIN) from the raw call just means
    wait again.
    """

    def readinto(self, buffer: Any) -> int:
        while True:
            wait_ready(self.fileno(), READ)
            n = super().readinto(buffer)
            if n is not None:
                return n

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            return self.readall()
        while True:
            wait_ready(self.fileno(), READ)
            data = super().read(size)
            if data is not None:
                return data

    def readall(self) -> bytes:
        chunks = []
        while True:
            wait_ready(self.fileno(), READ)
            data = super().read(io.DEFAULT_BUFFER_SIZE)
            if data is None:
                continue
            if not data:
                return b"".join(chunks)
            chunks.append(data)

    def write(self, data: Any) -> int:
        with memoryview(data) as view, view.cast("B") as raw:
            done = 0
            while True:
                wait_ready(self.fileno(), WRITE)
                n = super().write(raw[done : done + _PIPE_BUF])
                if n is not None:
                    done += n
                    if done >= len(raw):
                        return done

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
    if buffering == 1:
        # What io.open says (subprocess passes bufsize=1 through in binary mode).
        warnings.warn(
            "line buffering (buffering=1) isn't supported in binary mode, "
            "the default buffer size will be used",
            RuntimeWarning,
            stacklevel=2,
        )
    if buffering in (-1, 1):  # line buffering means nothing for binary files
        buffering = io.DEFAULT_BUFFER_SIZE
    cls = io.BufferedReader if mode == "rb" else io.BufferedWriter
    return cls(raw, buffering)
