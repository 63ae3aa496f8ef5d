"""What every ready-made service shares: listening, announcing readiness,
counting traffic, raising the fd limit, and running until SIGINT/SIGTERM.

A service announces each listener with one JSON line on stdout, so a script can
wait for it::

    {"event": "listening", "service": "echo", "address": "127.0.0.1:40123"}

SIGUSR1 prints the counts so far as one JSON line on stderr (``"event":
"stats"``); SIGINT and SIGTERM stop it gracefully (each part drains for up to
the drain timeout), and the summary (``"event": "stopped"``) goes to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ...kernel.greenthread import spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event
from ...net import (
    Address,
    bind_udp,
    call_on_stop_signals,
    format_address,
    listen,
    parse_address,
    server_context,
)

__all__ = [
    "Stats",
    "Address",
    "parse_address",
    "format_address",
    "ServiceError",
    "describe_os_error",
    "listen_on",
    "server_tls",
    "announce",
    "emit_event",
    "listener_address",
    "raise_fd_limit",
    "call_on_stop_signals",
    "Service",
    "run_service",
    "serve_on",
    "reserve_fds",
    "FD_HEADROOM",
    "stop_on_signals",
]

log = logging.getLogger("nettools.service")

#: Extra fds a server keeps for itself beyond its connection limit.
FD_HEADROOM = 64


class ServiceError(RuntimeError):
    """A service cannot start; the message says why in one line."""


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


def describe_os_error(exc: OSError) -> str:
    """One line for a failed bind, listen or file operation."""
    if exc.filename is not None:  # a file (e.g. --ready-file), not a socket
        return f"{exc.strerror or exc}: {exc.filename}"
    text = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        text = "address already in use"
    elif exc.errno == errno.EACCES:
        text = "permission denied (ports below 1024 need privileges)"
    return text


def listen_on(addr: Address, *, udp: bool = False, backlog: int = 1024) -> Any:
    """A green listening (or, with ``udp``, bound UDP) socket on ``addr``;
    ``ServiceError`` saying why if that fails."""
    try:
        if udp:
            return bind_udp(addr.sockaddr, addr.family)
        return listen(addr.sockaddr, addr.family, backlog)
    except OSError as exc:
        raise ServiceError(f"cannot listen on {addr}: {describe_os_error(exc)}") from None


def server_tls(cert: str | None, key: str | None) -> Any:
    """The green server TLS context of a certificate (and key) file, or None
    without a certificate; ``ValueError`` saying why if they do not load."""
    if cert is None:
        if key is not None:
            raise ValueError("--tls-key needs --tls-cert")
        return None
    try:
        return server_context(cert, key)
    except OSError as exc:
        text = exc.strerror or str(exc)
    except Exception as exc:  # ssl.SSLError and the like: a bad file
        text = str(exc)
    raise ValueError(f"cannot load --tls-cert/--tls-key: {text[:1].lower()}{text[1:]}")


def reserve_fds(connections: int, per_connection: int = 1) -> int:
    """Raise the open-file limit for ``connections`` at ``per_connection`` fds
    each, plus headroom for the service itself; returns the limit in force."""
    return raise_fd_limit(connections * per_connection + FD_HEADROOM)


def announce(service: str, address: str, ready_file: str | None = None, **extra: Any) -> None:
    """Print the ready line on stdout (and write it to ``ready_file``)."""
    emit_event({"event": "listening", "service": service, "address": address, **extra},
               ready_file)


def emit_event(event: dict[str, Any], ready_file: str | None = None) -> None:
    """Print one JSON event line for scripts on stdout (and write it to ``ready_file``)."""
    line = json.dumps(event)
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


class Service:
    """Runs until stopped: SIGINT/SIGTERM call ``stop`` (which drains), SIGUSR1
    prints the counts so far, and at the end the summary goes to stderr.

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
        """SIGINT/SIGTERM stop the service, SIGUSR1 reports (main thread only)."""
        call_on_stop_signals(self.stop)
        hub = get_hub()
        signal.signal(
            signal.SIGUSR1, lambda signum, frame: hub.run_callback_threadsafe(self.report)
        )

    def report(self) -> None:
        """Print the counts so far as one JSON line on stderr."""
        self._write({**self.stats.summary(self.name), "event": "stats"})

    def run(self) -> int:
        """Wait until stopped, print the summary on stderr; returns the exit code 0."""
        self.install_signal_handlers()
        hub = get_hub()
        hub.ref()  # a signal may end the wait even if nothing else is pending
        try:
            self._done.wait()
        finally:
            hub.unref()
        self._write(self.stats.summary(self.name))
        return 0

    @staticmethod
    def _write(event: dict) -> None:
        sys.stderr.write(json.dumps(event) + "\n")
        sys.stderr.flush()


def listener_address(listener: Any) -> tuple[str, str | None]:
    """What to announce for a listener (a listening socket, or an address as a
    string), and the unix socket file it made, to remove at the end (None)."""
    if isinstance(listener, str):
        return listener, None
    sockname = listener.getsockname()
    if isinstance(sockname, str) and sockname and not sockname.startswith("\0"):
        return format_address(sockname), sockname
    return format_address(sockname), None


def run_service(
    name: str,
    stats: Stats,
    listeners: Sequence[Any],
    stoppers: Sequence[Callable[[float | None], Any]],
    *,
    drain_timeout: float | None,
    ready_file: str | None = None,
    ready_extras: Sequence[dict[str, Any]] | None = None,
    ended: Event | None = None,
) -> int:
    """Announce each listener, run until SIGINT/SIGTERM (or until ``ended`` is
    sent), stop every part, print the summary; returns the exit code.

    A listener is a listening socket, or the address to announce as a string
    (a ZeroMQ endpoint, say); ``ready_extras`` adds fields to each one's ready
    line.  A unix socket file a listener made is removed at the end.
    """
    svc = Service(name, stats, drain_timeout)
    svc.stoppers.extend(stoppers)
    # Before the ready line: a script may signal as soon as it has seen it.
    svc.install_signal_handlers()
    if ended is not None:
        spawn(lambda: (ended.wait(), svc.stop()))
    extras = ready_extras or [{} for _ in listeners]
    unix_paths = []
    for listener, extra in zip(listeners, extras, strict=True):
        address, unix_path = listener_address(listener)
        if unix_path is not None:
            unix_paths.append(unix_path)
        announce(name, address, ready_file, **extra)
    code = svc.run()
    for path in unix_paths:  # a clean exit leaves no socket file behind
        with contextlib.suppress(OSError):
            os.unlink(path)
    return code


def serve_on(
    name: str,
    addr: Address,
    start: Callable[[Any], Callable[[float | None], Any]],
    stats: Stats,
    *,
    max_conns: int | None,
    drain_timeout: float | None,
    ready_file: str | None,
    udp: bool = False,
) -> int:
    """Listen on ``addr`` (with fds for ``max_conns``; None: no check), start a
    server there (``start(sock)`` returns its stop function), and run it as
    ``run_service`` does; returns the exit code."""
    if max_conns is not None:
        reserve_fds(max_conns)
    sock = listen_on(addr, udp=udp)
    stop = start(sock)
    return run_service(name, stats, [sock], [stop], drain_timeout=drain_timeout,
                       ready_file=ready_file)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While in the block, SIGINT/SIGTERM call ``stop`` in a greenthread: the polite
    stop of a client tool (no new requests, in-flight ones finish or are cut, results
    still written)."""
    old = call_on_stop_signals(stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
