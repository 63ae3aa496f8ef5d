"""Reading a long-running program's JSON lines (stdout or stderr) as they come.

A thread reads the stream line by line into a queue, so the test waits for the
next event with a timeout, however the lines were buffered.
"""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable
from typing import IO, Any


class Events:
    """The JSON lines of ``stream``; other lines (log lines) are kept apart in ``text``."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.text: list[str] = []
        self.thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self.thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self.lines.put(line)
        self.lines.put(None)

    def next(self, timeout: float = 20) -> dict[str, Any]:
        """The next JSON event; AssertionError if none comes in time or the stream ends."""
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no event within {timeout}s; other lines: "
                                     f"{''.join(self.text)[-2000:]}") from None
            if line is None:
                raise AssertionError(f"the stream ended; other lines: {''.join(self.text)[-2000:]}")
            if line.startswith("{"):
                return json.loads(line)
            self.text.append(line)

    def until(self, want: Callable[[dict[str, Any]], bool], timeout: float = 20) -> list[dict]:
        """Events up to and including the first one ``want`` accepts."""
        seen = []
        while True:
            event = self.next(timeout)
            seen.append(event)
            if want(event):
                return seen

    def rest(self, timeout: float = 20) -> list[dict[str, Any]]:
        """Every event left, once the stream has ended."""
        self.thread.join(timeout)
        events = []
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return events
            if line is None:
                return events
            if line.startswith("{"):
                events.append(json.loads(line))
            else:
                self.text.append(line)
