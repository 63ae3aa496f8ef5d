"""Serve any WSGI application (Flask, bottle, Django's WSGI handler) with nettools.

``load_app("module:attr")`` imports an application the way ``gunicorn`` does
(``serve_appspec``, re-exported here); ``run_single`` serves it in this
process, ``Supervisor`` pre-forks workers that each open their own
``SO_REUSEPORT`` listener on the same port (so the kernel spreads connections
over them), restarts a worker that dies, and forwards SIGTERM/SIGINT for a
graceful stop.  With ``metrics`` each worker serves
``/metrics`` on one shared port too, and every scrape sees all the workers
(``plumbing.metrics_workers``).

The parent of a pre-forked server never touches the hub: it uses plain
blocking calls, so every worker starts with a fresh hub of its own.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import select
import shutil
import signal
import socket as _stdsocket
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .plumbing import systemd
from .plumbing.service import (
    Address,
    call_on_stop_signals,
    describe_os_error,
    format_address,
    freeze_startup_heap,
)
from .serve_appspec import AppSpecError, check_spec, load_app, use_app_path
from .serve_socketio import worker_warnings

__all__ = [
    "AppSpecError",
    "ServeOptions",
    "Supervisor",
    "check_spec",
    "load_app",
    "prepare_app",
    "make_server",
    "run_single",
    "use_app_path",
    "ACCESS_LOG_FORMATS",
]

#: The access log's formats: Apache's combined format, or one JSON object a line.
ACCESS_LOG_FORMATS = ("combined", "json")

log = logging.getLogger("nettools.serve")

#: Workers dying this soon after their start count as "dying at once".
FAST_DEATH = 1.0
#: Give up after this many workers in a row died at once.
MAX_FAST_DEATHS = 5
#: Extra time, beyond the drain timeout, before stragglers get SIGKILL.
KILL_MARGIN = 5.0


@dataclass
class ServeOptions:
    """Everything a worker needs to serve the application."""

    spec: str
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    max_conns: int = 1024
    keepalive_timeout: float | None = 75.0
    drain_timeout: float | None = 10.0
    #: The access log's file, or "-" for stderr (None: no access log).
    access_log: str | None = None
    access_log_format: str = "combined"
    tls_cert: str | None = None
    tls_key: str | None = None
    patch: bool = True
    #: Serve /metrics on (host, port) (port 0 picks one); workers share it.
    metrics: tuple[str, int] | None = None
    #: Where workers leave their metrics for each other (made by the Supervisor).
    metrics_dir: str | None = None
    #: Directories the application is looked for in, besides the current one.
    pythonpath: list[str] = field(default_factory=list)

    @property
    def family(self) -> int:
        return _stdsocket.AF_INET6 if ":" in self.host else _stdsocket.AF_INET


def make_server(
    opts: ServeOptions, app: Callable, reuse_port: bool = False, sock: Any = None,
    stats: Any = None,
) -> tuple[Any, Callable[[], None]]:
    """A started ``WSGIServer`` for ``app`` on ``sock`` (a listening green socket),
    or on a fresh listener at ``opts.host``/``opts.port`` (or the socket systemd
    passed for it), with its access log and metrics; and the function that ends
    those once the server has stopped.  ``stats``: where to count requests for
    a /metrics served elsewhere (``nettools run``'s)."""
    from ..net import listen
    from ..web.wsgi import WSGIServer
    from .plumbing.service import Stats

    ssl_context = None
    if opts.tls_cert:
        from ..green import ssl as gssl

        ssl_context = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
        ssl_context.load_cert_chain(opts.tls_cert, opts.tls_key)
    counting = stats is not None or opts.metrics is not None
    if stats is None:
        stats = Stats()
    hooks: list[Callable] = []
    closers: list[Callable[[], Any]] = []
    stream = None
    if opts.access_log:
        if opts.access_log == "-":
            stream = sys.stderr
        else:  # one write per line: workers appending to one file never interleave
            stream = open(opts.access_log, "a", buffering=1, encoding="utf-8")  # noqa: SIM115
            closers.append(stream.close)
        if opts.access_log_format == "json":
            from .plumbing.logs import JsonAccessLog

            hooks.append(JsonAccessLog(stream, "serve"))
    if counting:
        from .plumbing.httpmetrics import RequestMetrics

        hooks.append(RequestMetrics(stats).hook)
    if sock is None:
        passed = systemd.claim_matching(Address(opts.host, opts.port))  # socket activation
        if passed is not None:
            sock = passed  # every worker accepts on the one socket systemd passed
        else:
            sock = listen((opts.host, opts.port), family=opts.family, reuse_port=reuse_port)
    server = WSGIServer(
        sock,
        app,
        max_size=opts.max_conns,
        keepalive_timeout=opts.keepalive_timeout,
        log=stream,
        log_output=stream is not None and opts.access_log_format == "combined",
        on_request=_each(hooks),
        ssl_context=ssl_context,
        name="serve",
    ).start()
    if opts.metrics is not None:
        closers[:0] = _start_metrics(opts, stats, reuse_port)

    def finish() -> None:
        for close in closers:
            close()

    return server, finish


def _each(hooks: list[Callable]) -> Callable | None:
    """One ``on_request`` hook calling each of ``hooks`` (None for none)."""
    if len(hooks) <= 1:
        return hooks[0] if hooks else None

    def both(*args: Any) -> None:
        for hook in hooks:
            hook(*args)

    return both


@contextlib.contextmanager
def _metrics_port(opts: ServeOptions) -> Any:
    """Failing to listen on the --metrics address says so (not the app's address)."""
    try:
        yield
    except OSError as exc:
        where, why = format_address(opts.metrics), describe_os_error(exc)
        raise RuntimeError(f"--metrics: cannot listen on {where}: {why}") from None


def _start_metrics(opts: ServeOptions, stats: Any, shared: bool) -> list[Callable[[], Any]]:
    """Serve /metrics (a worker's: on the shared port, with all workers' counts);
    returns what stops it."""
    from ..net import listen
    from .plumbing.metrics import HubProbe, MetricsEndpoint, ServiceCollector, registry_of

    host, port = opts.metrics
    family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
    with _metrics_port(opts):
        sock = listen((host, port), family=family, reuse_port=shared)
    opts.metrics = sock.getsockname()[:2]  # port 0 picked one
    probe = HubProbe().start()
    collector = ServiceCollector("serve", stats, probe=probe)
    if not shared:
        endpoint = MetricsEndpoint(sock, registry_of(collector), probe=probe).start()
        return [lambda: endpoint.stop(0)]
    from .plumbing.metrics_workers import WorkerMetrics

    workers = WorkerMetrics(opts.metrics_dir, collector).start()
    # Process families would jump from worker to worker between scrapes: left out.
    endpoint = MetricsEndpoint(sock, registry_of(workers, process=False), probe=probe).start()
    return [workers.stop, lambda: endpoint.stop(0)]


def prepare_app(opts: ServeOptions) -> Callable:
    """Patch (so the app's own clients go green), then import the app."""
    if opts.patch:
        from ..patcher import monkey_patch

        with warnings.catch_warnings():
            # It warns about modules imported before it -- here only the CLI's
            # own (typer, click), never the app, which is imported just after.
            warnings.simplefilter("ignore", RuntimeWarning)
            monkey_patch()
    return load_app(opts.spec)


def run_single(opts: ServeOptions, on_ready: Callable[[str], None]) -> dict:
    """Serve in this process until SIGINT/SIGTERM; returns the summary.

    Raises ``AppSpecError`` for a bad app, ``OSError`` if it cannot listen."""
    app = prepare_app(opts)
    srv, finish = make_server(opts, app, reuse_port=False)
    started = time.monotonic()

    def stop() -> None:
        systemd.notify("STOPPING=1", "STATUS=serve: stopping")
        srv.stop(opts.drain_timeout)

    call_on_stop_signals(stop, name="serve")  # also wakes the hub on signals
    host, port = srv.address[:2]
    address = format_address((host, port))
    on_ready(address, **_ready_extra(opts))
    systemd.notify("READY=1", f"STATUS=serve: listening on {address}")
    watchdog = systemd.Watchdog().start()
    freeze_startup_heap()
    try:
        srv.serve_forever()
    finally:
        watchdog.stop()
        finish()
    return _summary(1, 0, srv.server.accepted, srv.server.errors, started)


def _ready_extra(opts: ServeOptions) -> dict:
    return {} if opts.metrics is None else {"metrics": format_address(opts.metrics)}


def _summary(workers: int, restarts: int, connections: int, errors: int, started: float) -> dict:
    return {
        "event": "stopped",
        "service": "serve",
        "workers": workers,
        "restarts": restarts,
        "connections": connections,
        "errors": errors,
        "seconds": round(time.monotonic() - started, 3),
    }


class Supervisor:
    """Pre-fork ``opts.workers`` workers on one port and keep them running."""

    def __init__(self, opts: ServeOptions) -> None:
        self.opts = opts
        self.workers: dict[int, float] = {}  # pid -> start time
        self.ready: set[int] = set()
        self.restarts = 0
        self.connections = 0
        self.errors = 0
        self._fast_deaths = 0
        self._stopping = False
        self._stop_deadline = 0.0
        self._buffer = b""
        self._reserved: list[_stdsocket.socket] = []
        self._warned: set[str] = set()

    # ---------------------------------------------------------------- parent

    def run(self, on_ready: Callable[[str], None]) -> dict:
        """Fork, announce once every worker listens, supervise until stopped.

        Raises ``AppSpecError`` (exit 2) or ``RuntimeError``/``OSError`` (exit 1)."""
        started = time.monotonic()
        if systemd.passed_for(Address(self.opts.host, self.opts.port)) is None:
            self.opts.port = self._reserve_port(self.opts.host, self.opts.port)
        # else: the workers share the socket systemd passed (each takes it after the fork)
        watchdog = systemd.watchdog_interval()
        next_ping = 0.0
        if self.opts.metrics is not None:
            with _metrics_port(self.opts):
                self.opts.metrics = (self.opts.metrics[0], self._reserve_port(*self.opts.metrics))
            self.opts.metrics_dir = tempfile.mkdtemp(prefix="nettools-serve-metrics-")
        self._pipe_r, self._pipe_w = os.pipe()
        self._wake_r, self._wake_w = os.pipe()
        for fd in (self._pipe_r, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)
        old_wakeup = signal.set_wakeup_fd(self._wake_w)
        old = {s: signal.signal(s, self._on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
        # SIGCHLD only needs to wake the loop up; waitpid finds out who died.
        old[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, lambda *a: None)
        try:
            for _ in range(self.opts.workers):
                self._spawn()
            announced = False
            while self.workers:
                if not announced and len(self.ready) >= self.opts.workers and not self._stopping:
                    address = format_address((self.opts.host, self.opts.port))
                    on_ready(address, **_ready_extra(self.opts))
                    systemd.notify("READY=1", f"STATUS=serve: {self.opts.workers} workers "
                                   f"listening on {address}")  # fmt: skip
                    announced = True
                if watchdog is not None and time.monotonic() >= next_ping:
                    systemd.notify("WATCHDOG=1")  # this loop is the parent's hub
                    next_ping = time.monotonic() + watchdog
                self._wait_events(0.5 if watchdog is None else min(0.5, watchdog))
                self._read_reports(announced)
                self._reap(announced)
                if self._stopping and time.monotonic() > self._stop_deadline:
                    self._signal_all(signal.SIGKILL)
            self._read_reports(True)
        except BaseException:
            self._signal_all(signal.SIGKILL)
            self._reap_all()
            raise
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for sig, handler in old.items():
                signal.signal(sig, handler)
            for fd in (self._pipe_r, self._pipe_w, self._wake_r, self._wake_w):
                os.close(fd)
            for sock in self._reserved:
                sock.close()
            if self.opts.metrics_dir is not None:
                shutil.rmtree(self.opts.metrics_dir, ignore_errors=True)
        return _summary(
            self.opts.workers, self.restarts, self.connections, self.errors, started
        )

    def _reserve_port(self, host: str, port: int) -> int:
        """Bind (not listen) a SO_REUSEPORT socket: it picks the port for port 0,
        holds it for restarted workers, and fails early if the port is taken;
        returns the port."""
        family = _stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET
        sock = _stdsocket.socket(family, _stdsocket.SOCK_STREAM)
        try:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEPORT, 1)
            sock.bind((host, port))
        except BaseException:
            sock.close()
            raise
        self._reserved.append(sock)
        return sock.getsockname()[1]

    def _on_signal(self, signum: int, frame: Any) -> None:
        if not self._stopping:
            self._stopping = True
            systemd.notify("STOPPING=1", "STATUS=serve: stopping")
            drain = self.opts.drain_timeout
            self._stop_deadline = (
                float("inf") if drain is None else time.monotonic() + drain + KILL_MARGIN
            )
        self._signal_all(signal.SIGTERM)

    def _signal_all(self, sig: int) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_events(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._pipe_r, self._wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _read_reports(self, announced: bool) -> None:
        """Workers write one JSON line each when listening, failing or stopped."""
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._pipe_r, 65536):
                self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            report = json.loads(line)
            pid = report["pid"]
            if report.get("ready"):
                self.ready.add(pid)
                self._fast_deaths = 0
                for warning in report.get("warnings", ()):
                    if warning not in self._warned:  # every worker finds the same
                        self._warned.add(warning)
                        log.warning("%s", warning)
            elif report.get("stopped"):
                self.connections += report["connections"]
                self.errors += report["errors"]
            elif "error" in report and not announced:
                # A bad app or a busy port fails every worker alike: give up now.
                self._signal_all(signal.SIGKILL)
                self._reap_all()
                if report.get("code") == 2:
                    raise AppSpecError(report["error"])
                raise RuntimeError(report["error"])

    def _reap(self, announced: bool) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if pid == 0:
                return
            started = self.workers.pop(pid, None)
            self.ready.discard(pid)
            if started is None or self._stopping:
                continue
            code = os.waitstatus_to_exitcode(status)
            if not announced:
                raise RuntimeError(f"worker {pid} exited during startup (status {code})")
            log.warning("worker %d died (status %d); starting a new one", pid, code)
            if time.monotonic() - started < FAST_DEATH:
                self._fast_deaths += 1
                if self._fast_deaths >= MAX_FAST_DEATHS:
                    raise RuntimeError(f"workers keep dying at once (last status {code})")
                time.sleep(min(0.1 * 2**self._fast_deaths, 2.0))  # back off
            self.restarts += 1
            self._spawn()

    def _reap_all(self) -> None:
        for pid in list(self.workers):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()

    def _spawn(self) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        # Block our signals across fork so the parent's handlers never run in
        # the child before it has installed its own.
        sigs = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD}
        signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
        try:
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                os._exit(self._worker(sigs))
            self.workers[pid] = time.monotonic()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, sigs)

    # ---------------------------------------------------------------- worker

    def _report(self, **fields: Any) -> None:
        # One short write per line: atomic on a pipe, so workers never interleave.
        line = json.dumps({"pid": os.getpid(), **fields}).encode() + b"\n"
        os.set_blocking(self._pipe_w, True)
        os.write(self._pipe_w, line)

    def _worker(self, blocked: set[int]) -> int:
        """The child's whole life; returns its exit code."""
        code = 1
        try:
            signal.set_wakeup_fd(-1)
            for sig in blocked:
                signal.signal(sig, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, blocked)
            for fd in (self._pipe_r, self._wake_r, self._wake_w):
                os.close(fd)
            for sock in self._reserved:
                sock.close()
            try:
                app = prepare_app(self.opts)
                srv, finish = make_server(self.opts, app, reuse_port=True)
            except AppSpecError as exc:
                self._report(error=str(exc), code=2)
                return 2
            except OSError as exc:
                text = "address already in use" if exc.errno == errno.EADDRINUSE else str(exc)
                self._report(error=f"cannot listen: {text}", code=1)
                return 1
            except Exception as exc:  # the app's own import-time failure
                self._report(error=f"cannot load {self.opts.spec!r}: {exc!r}", code=1)
                return 1
            srv.install_signal_handlers(self.opts.drain_timeout)
            self._report(ready=True, warnings=worker_warnings(app, self.opts.workers))
            freeze_startup_heap()
            try:
                srv.serve_forever()
            finally:
                finish()
            self._report(stopped=True, connections=srv.server.accepted, errors=srv.server.errors)
            code = 0
        except BaseException:
            import traceback

            traceback.print_exc()
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
        return code
