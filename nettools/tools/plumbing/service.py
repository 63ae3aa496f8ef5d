"""What every ready-made service shares: listening, announcing readiness,
counting traffic, raising the fd limit, and running until SIGINT/SIGTERM.

A service announces each listener with one JSON line on stdout, so a script can
wait for it::

    {"event": "listening", "service": "echo", "address": "127.0.0.1:40123"}

-- unless stdout is a terminal: a person then reads ``echo listening on
127.0.0.1:40123`` (or ``wschat: open http://127.0.0.1:8000/`` for a web page),
while ``--ready-file`` still gets the JSON line (and ``ready_json(True)``, the
CLI's ``--ready-json``, keeps it on the terminal too).  Under systemd it also
says ``READY=1`` (see ``plumbing.systemd``).

SIGUSR1 prints the counts so far as one JSON line on stderr (``"event":
"stats"``); SIGINT and SIGTERM stop it gracefully (each part drains for up to
the drain timeout), and the summary (``"event": "stopped"``) goes to stderr.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import json
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from ...kernel.greenthread import spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event
from ...net import Address, bind_udp, call_on_stop_signals, format_address, listen, server_context
from ...net import parse_address as parse_net_address
from . import systemd

__all__ = [
    "Stats",
    "Address",
    "parse_address",
    "format_address",
    "ServiceError",
    "describe_os_error",
    "error_kind",
    "listen_on",
    "server_tls",
    "announce",
    "ready_json",
    "web_url",
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
    "freeze_startup_heap",
]

log = logging.getLogger("nettools.service")

#: Extra fds a server keeps for itself beyond its connection limit.
FD_HEADROOM = 64


class ServiceError(RuntimeError):
    """A service cannot start; the message says why in one line."""


def _internal(default: Any) -> Any:
    """A ``Stats`` field the summary leaves out."""
    return field(default_factory=default, repr=False, compare=False,
                 metadata={"summary": False})


@dataclass
class Stats:
    """Traffic counters a service keeps while it runs.

    ``error(kind)`` counts an error of a kind (``errors`` is their total).  What
    the metrics endpoint reads besides the counters: ``metric_sources``,
    callables ``source(families)`` that add a tool's own families when it is
    scraped (see ``nettools.tools.plumbing.metrics``), and ``in_flight``, a
    callable giving ``(bytes_in, bytes_out)`` of connections still open when a
    tool adds their bytes to the totals only as they close.
    """

    connections: int = 0
    active: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    errors: int = 0
    started: float = field(default_factory=time.monotonic, metadata={"summary": False})
    error_kinds: dict[str, int] = _internal(dict)
    metric_sources: list[Callable[[Any], None]] = _internal(list)
    in_flight: Callable[[], tuple[int, int]] | None = _internal(lambda: None)

    def error(self, kind: str) -> None:
        """Count one error of ``kind`` (``reset``, ``timeout``, ``tls``, ...)."""
        self.errors += 1
        self.error_kinds[kind] = self.error_kinds.get(kind, 0) + 1

    def summary(self, service: str) -> dict:
        d = {
            f.name: _plain(getattr(self, f.name))
            for f in fields(self)
            if f.metadata.get("summary", True)
        }
        d["seconds"] = round(time.monotonic() - self.started, 3)
        return {"event": "stopped", "service": service, **d}


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) and not isinstance(value, type) else value


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


#: ``error_kind`` of an errno.
_ERRNO_KINDS = {
    errno.ECONNRESET: "reset", errno.EPIPE: "reset", errno.ECONNABORTED: "reset",
    errno.ETIMEDOUT: "timeout", errno.ECONNREFUSED: "refused",
    errno.EHOSTUNREACH: "unreachable", errno.ENETUNREACH: "unreachable",
    errno.EMFILE: "fd_limit", errno.ENFILE: "fd_limit",
}  # fmt: skip


def error_kind(exc: BaseException) -> str:
    """A short name for the kind of a connection's error, for counting:
    ``reset``, ``timeout``, ``refused``, ``unreachable``, ``tls``, ``fd_limit``,
    ``os`` (another ``OSError``) or ``other``."""
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ssl.SSLError):
        return "tls"
    if isinstance(exc, OSError):
        return _ERRNO_KINDS.get(exc.errno, "os")
    return "other"


def parse_address(text: str, default_host: str = "127.0.0.1") -> Address:
    """``PORT``, ``HOST:PORT``, ``[V6]:PORT``, ``unix:/PATH`` or ``systemd:NAME``
    (a socket systemd passed, see ``plumbing.systemd``) -> an ``Address``;
    ``ValueError`` with a message fit to show the user as is."""
    if text.strip().startswith("systemd:"):
        return systemd.SystemdAddress.parse(text)
    return parse_net_address(text, default_host)


def listen_on(addr: Address, *, udp: bool = False, backlog: int = 1024) -> Any:
    """A green listening (or, with ``udp``, bound UDP) socket on ``addr``;
    ``ServiceError`` saying why if that fails.  A socket systemd passed is taken
    instead when ``addr`` names it (``systemd:NAME``) or it is bound to ``addr``."""
    if isinstance(addr, systemd.SystemdAddress):
        try:
            return systemd.claim(addr.name)
        except LookupError as exc:
            raise ServiceError(f"cannot listen on {addr}: {exc}") from None
    passed = systemd.claim_matching(addr, socket.SOCK_DGRAM if udp else socket.SOCK_STREAM)
    if passed is not None:
        return passed
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


_ready = {"json": False}


def ready_json(on: bool = True) -> None:
    """Print the JSON ready line even when stdout is a terminal."""
    _ready["json"] = on


def announce(
    service: str,
    address: str,
    ready_file: str | None = None,
    *,
    url: str | None = None,
    **extra: Any,
) -> None:
    """Print the ready line on stdout (and write it to ``ready_file``); on a
    terminal, a line for a person instead (``open URL`` when given a ``url``)."""
    human = f"{service}: open {url}" if url else f"{service} listening on {address}"
    if extra.get("metrics"):
        human += f" (metrics at http://{extra['metrics']}/metrics)"
    emit_event({"event": "listening", "service": service, "address": address, **extra},
               ready_file, human=human)


def emit_event(event: dict[str, Any], ready_file: str | None = None, *,
               human: str | None = None) -> None:
    """Print one JSON event line for scripts on stdout (and write it to
    ``ready_file``); ``human`` is printed instead when stdout is a terminal
    (unless ``ready_json``)."""
    line = json.dumps(event)
    # The file first: a script that has seen the stdout line may read it at once.
    if ready_file:
        with open(ready_file, "a", encoding="utf-8") as f:
            f.write(line + "\n")
    if human is not None and not _ready["json"] and sys.stdout.isatty():
        line = human
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def web_url(scheme: str, address: str) -> str:
    """The URL a browser opens for a web server listening on ``address``
    (``0.0.0.0`` and ``::`` become the loopback address, which reaches them)."""
    host, _, port = address.rpartition(":")
    host = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    return f"{scheme}://{host}:{port}/"


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
        systemd.notify("STOPPING=1", f"STATUS={self.name}: stopping")
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
    string), and the unix socket file it made, to remove at the end (None; also
    for abstract names and sockets systemd passed: their files are systemd's)."""
    if isinstance(listener, str):
        return listener, None
    sockname = listener.getsockname()
    if (isinstance(sockname, str) and sockname and not sockname.startswith("\0")
            and not systemd.is_passed(listener)):
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
    metrics: Address | None = None,
    metrics_servers: Callable[[], Any] | None = None,
    web: str | None = None,
) -> int:
    """Announce each listener, run until SIGINT/SIGTERM (or until ``ended`` is
    sent), stop every part, print the summary; returns the exit code.

    A listener is a listening socket, or the address to announce as a string
    (a ZeroMQ endpoint, say); ``ready_extras`` adds fields to each one's ready
    line.  A unix socket file a listener made is removed at the end.
    ``metrics``: serve ``/metrics`` there (see ``nettools.tools.plumbing.metrics``);
    each ready line then names it too; ``metrics_servers()``, the ``net.Server``s
    whose connections are the service's (default: every one in the process).
    ``web``: the scheme of a web server
    (``http``, ``https``), which a person on a terminal is told to open.
    Under systemd: ``READY=1`` once all are announced, ``STOPPING=1`` when the
    stop begins, and the watchdog pinged from the hub while it runs.
    """
    svc = Service(name, stats, drain_timeout)
    svc.stoppers.extend(stoppers)
    # Before the ready line: a script may signal as soon as it has seen it.
    svc.install_signal_handlers()
    if ended is not None:
        spawn(lambda: (ended.wait(), svc.stop()))
    endpoint = None if metrics is None else start_metrics(name, stats, metrics, metrics_servers)
    extras = [dict(extra) for extra in ready_extras or [{} for _ in listeners]]
    if endpoint is not None:
        for extra in extras:
            extra["metrics"] = format_address(endpoint.address)
    unix_paths = []
    watchdog = systemd.Watchdog()
    try:
        for listener, extra in zip(listeners, extras, strict=True):
            address, unix_path = listener_address(listener)
            if unix_path is not None:
                unix_paths.append(unix_path)
            url = web_url(web, address) if web else None
            announce(name, address, ready_file, url=url, **extra)
        if endpoint is not None and (path := listener_address(endpoint.socket)[1]):
            unix_paths.append(path)
        for left in systemd.unclaimed():
            log.warning("%s: systemd passed a socket named %r that nothing uses", name, left)
        systemd.notify("READY=1", f"STATUS={name}: {systemd.describe(list(listeners))}")
        watchdog.start()
        freeze_startup_heap()
        code = svc.run()
    finally:
        watchdog.stop()
        if endpoint is not None:
            endpoint.stop(0)  # last: a scrape during the drain still sees it all
    for path in unix_paths:  # a clean exit leaves no socket file behind
        with contextlib.suppress(OSError):
            os.unlink(path)
    return code


def freeze_startup_heap() -> None:
    """Once a service is ready to serve: leave what start-up made out of the
    cyclic collector's full collections (``gc.freeze``)."""
    # What start-up made (modules, the CLI, the rules, a web application and its
    # framework) lives as long as the service: frozen, it is no longer walked by
    # every full collection, which then costs what the connections left, not the
    # whole heap.
    gc.freeze()


def start_metrics(
    name: str, stats: Stats | None, addr: Address, servers: Callable[[], Any] | None = None
) -> Any:
    """Serve service ``name``'s metrics (``stats``, its servers, the hub) on ``addr``;
    returns the started ``MetricsEndpoint``.  ``servers``: see ``ServiceCollector``."""
    from .metrics import HubProbe, MetricsEndpoint, ServiceCollector, registry_of

    probe = HubProbe()
    collector = ServiceCollector(name, stats, servers=servers, probe=probe)
    try:
        endpoint = MetricsEndpoint(addr, registry_of(collector), probe=probe)
    except ServiceError as exc:
        raise ServiceError(f"--metrics: {exc}") from None
    probe.start()
    return endpoint.start()


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
    metrics: Address | None = None,
    web: str | None = None,
) -> int:
    """Listen on ``addr`` (with fds for ``max_conns``; None: no check), start a
    server there (``start(sock)`` returns its stop function), and run it as
    ``run_service`` does; returns the exit code."""
    if max_conns is not None:
        reserve_fds(max_conns)
    sock = listen_on(addr, udp=udp)
    stop = start(sock)
    return run_service(name, stats, [sock], [stop], drain_timeout=drain_timeout,
                       ready_file=ready_file, metrics=metrics, web=web)


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
