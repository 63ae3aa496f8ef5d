"""Metrics of pre-forked workers, seen as one service by every scrape.

The workers of ``nettools serve --workers N`` share one port for their
application and one for ``--metrics``; the kernel hands a scrape to any of
them.  So each worker writes its families to ``DIR/PID.json`` every
``interval`` seconds (and when it stops), and the worker that is scraped adds
the other workers' files to its own live families: one scrape sees them all.
A worker that is gone still counts with its counters and histograms (totals
never go backwards when a worker is replaced); its gauges are left out.

This is what ``prometheus_client``'s multiprocess mode does, with the workers'
cheap in-process counters (``net.Server``'s, ``Stats``, ``Histogram``) in place
of its per-observation writes to shared memory: a file per worker per second
instead of a locked write per request.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any

from ...kernel.greenthread import GreenThread, kill, sleep, spawn
from .metrics import Families, ServiceCollector

__all__ = ["WorkerMetrics"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class WorkerMetrics:
    """One worker's side: its ``collector``'s families written to ``directory``
    every ``interval`` seconds, and a collector (``collect``) of all workers'."""

    def __init__(self, directory: str, collector: ServiceCollector, interval: float = 1.0):
        self.directory = directory
        self.collector = collector
        self.interval = interval
        self.pid = os.getpid()
        self.path = os.path.join(directory, f"{self.pid}.json")
        self._writer: GreenThread | None = None

    def start(self) -> WorkerMetrics:
        self.write()
        self._writer = spawn(self._write_every)
        return self

    def stop(self) -> None:
        """Stop writing; the last write holds the final counts."""
        if self._writer is not None:
            kill(self._writer)
            self._writer = None
        self.write()

    def _write_every(self) -> None:
        while True:
            sleep(self.interval)
            self.write()

    def write(self) -> None:
        """This worker's families, replacing its file at once (write, then rename)."""
        tmp = f"{self.path}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.collector.families().dump(), f)
        os.replace(tmp, self.path)

    def others(self) -> Iterator[tuple[int, list]]:
        """``(pid, families)`` of every other worker that wrote a file."""
        with contextlib.suppress(FileNotFoundError):
            for name in os.listdir(self.directory):
                stem, ext = os.path.splitext(name)
                if ext != ".json" or not stem.isdigit() or int(stem) == self.pid:
                    continue
                try:
                    with open(os.path.join(self.directory, name), encoding="utf-8") as f:
                        yield int(stem), json.load(f)
                except (OSError, ValueError):
                    continue  # being replaced right now, or gone: the next scrape sees it

    def families(self) -> Families:
        """This worker's live families plus every other worker's last written ones."""
        merged = self.collector.families()
        for pid, dumped in self.others():
            merged.load(dumped, gauges=_alive(pid))
        return merged

    def collect(self) -> Iterator[Any]:
        return iter(self.families().metrics())
