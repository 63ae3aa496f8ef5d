"""What every ready-made service shares: announcing readiness, counting traffic,
raising the fd limit, and stopping gracefully on SIGINT/SIGTERM.

A service announces each listener with one JSON line on stdout, so a script can
wait for it::

    {"event": "listening", "service": "echo", "address": "127.0.0.1:40123"}

and on stop prints one JSON summary line on stderr.
"""

from __future__ import annotations

import json
import logging
import signal
import socket as _socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ...kernel.greenthread import spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event

__all__ = [
    "Stats", "format_address", "announce", "raise_fd_limit", "call_on_stop_signals", "Service",
]

log = logging.getLogger("nettools.service")


@dataclass
class Stats:
    """Traffic counters a service keeps while it runs."""

    connections: int = 0
    active: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic)

    def summary(self, service: str) -> dict:
        d = asdict(self)
        d.pop("started")
        d["seconds"] = round(time.monotonic() - self.started, 3)
        return {"event": "stopped", "service": service, **d}


def format_address(addr: Any, family: int | None = None) -> str:
    """``host:port``, ``[v6]:port`` or ``unix:/path`` for a socket address."""
    if isinstance(addr, (str, bytes)) or family == _socket.AF_UNIX:
        path = addr.decode() if isinstance(addr, bytes) else addr
        return f"unix:{path}"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def announce(service: str, address: str, ready_file: str | None = None, **extra: Any) -> None:
    """Print the ready line on stdout (and write it to ``ready_file``)."""
    line = json.dumps({"event": "listening", "service": service, "address": address, **extra})
    # The file first: a script that has seen the stdout line may read it at once.
    if ready_file:
        with open(ready_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit towards ``wanted`` (capped by the hard
    limit); returns the soft limit now in force."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Linux
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as exc:
            log.warning("could not raise the open-file limit to %d: %s", target, exc)
    return soft


def call_on_stop_signals(stop: Callable[[], Any]) -> dict[int, Any]:
    """Make SIGINT and SIGTERM run ``stop()`` in a greenthread (main thread only);
    returns the handlers they had, to put back."""
    hub = get_hub()

    def on_signal(signum: int, frame: Any) -> None:
        hub.run_callback_threadsafe(lambda: spawn(stop))

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    hub.wake_on_signals()
    return old


class Service:
    """Runs until stopped: SIGINT/SIGTERM call ``stop`` (which drains), then the
    summary goes to stderr.

    ``stoppers`` are callables ``fn(drain_timeout)`` that stop one part of the
    service (e.g. ``Server.stop``); they run concurrently.
    """

    def __init__(self, name: str, stats: Stats, drain_timeout: float | None = 10.0) -> None:
        self.name = name
        self.stats = stats
        self.drain_timeout = drain_timeout
        self.stoppers: list[Callable[[float | None], Any]] = []
        self._stopping = False
        self._done = Event()

    def stop(self) -> None:
        """Stop every part, each given ``drain_timeout`` to finish its work."""
        if self._stopping:
            return
        self._stopping = True
        gts = [spawn(fn, self.drain_timeout) for fn in self.stoppers]
        for gt in gts:
            try:
                gt.wait()
            except Exception:
                log.exception("%s: error while stopping", self.name)
        self._done.send(None)

    def install_signal_handlers(self) -> None:
        call_on_stop_signals(self.stop)

    def run(self) -> int:
        """Wait until stopped, print the summary on stderr; returns the exit code 0."""
        self.install_signal_handlers()
        hub = get_hub()
        hub.ref()  # a signal may end the wait even if nothing else is pending
        try:
            self._done.wait()
        finally:
            hub.unref()
        sys.stderr.write(json.dumps(self.stats.summary(self.name)) + "\n")
        sys.stderr.flush()
        return 0

