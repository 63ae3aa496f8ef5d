"""``GreenPipe``: ``open()`` for pipes and files whose reads and writes park the greenthread.

``GreenPipe(fd_or_path, mode, buffering, ...)`` takes ``open()``'s arguments
and builds the same stack -- a raw file, a buffer, a text layer -- on a raw
file whose calls park the greenthread until poll(2) says the fd is ready
(``GreenFileIO``), so a greenthread reading an empty pipe lets the others run.
Regular files are always ready: for them it is plain ``open()``.
"""

from __future__ import annotations

import io
from typing import Any

from ._io import GreenFileIO

__all__ = ["GreenPipe", "GreenFileIO"]


def GreenPipe(  # noqa: N802 - eventlet's name for what is a factory here
    name: Any,
    mode: str = "r",
    buffering: int = -1,
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
    closefd: bool = True,
    opener: Any = None,
) -> Any:
    """Open ``name`` (a path or an fd) as ``open()`` would, green."""
    kinds = set(mode)
    if not kinds <= set("rwaxbt+") or len(kinds) != len(mode):
        raise ValueError(f"invalid mode: {mode!r}")
    binary = "b" in kinds
    if binary and "t" in kinds:
        raise ValueError("can't have text and binary mode at once")
    if binary and (encoding is not None or errors is not None or newline is not None):
        raise ValueError("binary mode doesn't take an encoding, errors or newline argument")
    raw_mode = "".join(c for c in mode if c in "rwax+")
    raw = GreenFileIO(name, raw_mode, closefd, opener=opener)
    line_buffering = buffering == 1 or (buffering < 0 and raw.isatty())
    if buffering in (-1, 1):
        buffering = io.DEFAULT_BUFFER_SIZE
    if buffering == 0:
        if binary:
            return raw
        raw.close()
        raise ValueError("can't have unbuffered text I/O")
    if "+" in kinds:
        buffer: Any = io.BufferedRandom(raw, buffering)
    elif kinds & set("wax"):
        buffer = io.BufferedWriter(raw, buffering)
    else:
        buffer = io.BufferedReader(raw, buffering)
    if binary:
        return buffer
    text = io.TextIOWrapper(buffer, encoding, errors, newline, line_buffering)
    text.mode = mode
    return text
