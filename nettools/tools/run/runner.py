"""``Runner``: every service of a run file in this process, on one hub.

Life of a run:

1. The file is read and checked (``config``); a bad one raises ``ConfigError``
   before anything starts.
2. Each service starts, in the file's order (``kinds``).  One that fails stops
   those already started and raises ``StartError`` naming it.
3. Each listener is announced on stdout, as every nettools server does
   (``{"event": "listening", "service": TYPE, "address": ..., "name": NAME}``),
   then one line with them all: ``{"event": "ready", "services": {NAME:
   {"service": TYPE, "address": FIRST, "listeners": [{"address": ..., ...}]}}}``,
   also written (atomically) to the ready file as one JSON document.
4. SIGHUP reads the file again.  A service whose settings are unchanged keeps
   running, connections and all; a removed one drains and stops; a changed one
   drains, stops and starts anew; an added one starts.  Stderr gets
   ``{"event": "reloaded", ...}`` saying which, and stdout the new listening
   lines and ready line.  A file that does not check out changes nothing
   (``{"event": "reload-failed", "error": ...}``); a service that fails to
   start then is reported (``{"event": "failed", ...}``) and the rest go on.
5. SIGINT/SIGTERM stop every service at once, each draining for its own
   ``drain-timeout``, then one summary per service goes to stderr
   (``{"event": "stopped", "service": TYPE, "name": NAME, ...}``).  SIGUSR1
   prints the counts so far (``"event": "stats"``).  A service that ends by
   itself (a zmq proxy told TERMINATE) prints its summary; the run ends when
   none is left.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...kernel.greenthread import GreenThread, kill, spawn
from ...kernel.hub import get_hub
from ...kernel.sync import Event, Semaphore
from ..plumbing import systemd
from ..plumbing.service import (
    FD_HEADROOM,
    Address,
    ServiceError,
    announce,
    call_on_stop_signals,
    describe_os_error,
    format_address,
    listener_address,
    raise_fd_limit,
)
from .config import ConfigError, RunConfig, ServiceSpec, load_config
from .kinds import KINDS
from .options import Kind
from .running import RUN_METRICS, Started

__all__ = ["Runner", "StartError", "RunningService"]

log = logging.getLogger("nettools.run")


class StartError(RuntimeError):
    """A service that could not start: ``name``, its ``kind``, and why.
    ``usage`` is true when its settings are to blame (exit 2), false for the
    world (a port in use: exit 1)."""

    def __init__(self, name: str, kind: str, reason: str, usage: bool) -> None:
        super().__init__(f"service {name!r} ({kind}) failed to start: {reason}")
        self.name = name
        self.kind = kind
        self.reason = reason
        self.usage = usage


@dataclass
class RunningService:
    """A started service and what the runner keeps of it."""

    spec: ServiceSpec
    started: Started
    listeners: list[dict[str, Any]]  # {"address": ..., **extras} per listener
    unix_paths: list[str] = field(default_factory=list)
    watcher: GreenThread | None = None

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def kind(self) -> str:
        return self.spec.kind.name

    def summary(self, event: str = "stopped") -> dict[str, Any]:
        data = dict(self.started.stats.summary(self.kind))
        return {"event": event, "service": self.kind, "name": self.name,
                **{k: v for k, v in data.items() if k not in ("event", "service")}}  # fmt: skip


class Runner:
    """Runs the services of the run file ``file`` (see the module doc).

    ``ready_file``: where to write the ready line's JSON too.  ``kinds``: the
    types of service a file may use.  ``metrics``: serve every service's
    Prometheus metrics at ``http://ADDR/metrics`` (the ready line names it).
    """

    def __init__(
        self, file: str, *, ready_file: str | None = None, kinds: Mapping[str, Kind] = KINDS,
        metrics: Address | None = None,
    ) -> None:
        self.file = file
        self.ready_file = ready_file
        #: Where to serve one /metrics for every service (see ``run.metrics``).
        self.metrics = metrics
        self.metrics_endpoint: Any = None
        self.kinds = kinds
        self.services: dict[str, RunningService] = {}
        self.reloads = 0
        self._turn = Semaphore(1)  # a reload and the stop never overlap
        self._stopping = False
        self._done = Event()

    # ------------------------------------------------------------ running

    def check(self) -> RunConfig:
        """Read and check the file; raises ``ConfigError``."""
        return load_config(self.file, self.kinds)

    def run(self) -> int:
        """Start every service, run until SIGINT/SIGTERM (or until none is left),
        stop them all; returns the exit code 0.

        Raises ``ConfigError`` for a bad file and ``StartError`` for a service
        that fails to start (the others stopped again).
        """
        config = self.check()
        # Before any ready line: a script may signal as soon as it has seen one.
        old = {
            **call_on_stop_signals(self.stop),
            **call_on_stop_signals(self.reload, (signal.SIGHUP,)),
            **call_on_stop_signals(self.report, (signal.SIGUSR1,)),
        }
        hub = get_hub()
        hub.ref()  # a signal may end the wait even if nothing else is pending
        watchdog = systemd.Watchdog()
        try:
            if self.metrics is not None:
                self.metrics_endpoint = self._serve_metrics(self.metrics)
            self.start(config.services.values())
            systemd.notify("READY=1", self._status())
            watchdog.start()
            self._done.wait()
        finally:
            watchdog.stop()
            hub.unref()
            if self.metrics_endpoint is not None:
                self.metrics_endpoint.stop(0)  # last: a scrape during the drain sees it all
            for sig, handler in old.items():
                signal.signal(sig, handler)
        return 0

    def start(self, specs: Iterable[ServiceSpec]) -> None:
        """Start the services of a fresh run; raises ``StartError`` (having
        stopped those it started) if one fails."""
        specs = list(specs)
        with self._turn:  # a SIGHUP or SIGTERM meanwhile waits for the start to finish
            self._reserve_fds(specs)
            try:
                for spec in specs:
                    self.services[spec.name] = self._start_one(spec)
                self._announce(self.services.values())
            except (StartError, OSError):
                self._stop_all(list(self.services.values()), report=False)
                self.services.clear()
                raise

    def stop(self) -> None:
        """Stop every service (each drains for its ``drain-timeout``), print the
        summaries, and end ``run``."""
        if self._stopping:
            return
        self._stopping = True
        systemd.notify("STOPPING=1", "STATUS=run: stopping")
        with self._turn:
            services, self.services = list(self.services.values()), {}
            self._stop_all(services, report=True)
        self._done.send(None)

    def report(self) -> None:
        """Print every service's counts so far on stderr."""
        for svc in list(self.services.values()):
            _emit(sys.stderr, svc.summary("stats"))

    # ------------------------------------------------------------- reload

    def reload(self) -> None:
        """Read the file again and bring the services in line with it (see the
        module doc)."""
        with self._turn:
            if self._stopping:
                return
            self.reloads += 1
            try:
                config = self.check()
            except ConfigError as exc:
                log.warning("run: reload failed, nothing changed: %s", exc)
                _emit(sys.stderr, {"event": "reload-failed", "error": str(exc)})
                return
            systemd.notify("RELOADING=1", "STATUS=run: reloading")
            try:
                self._reload(config)
            finally:
                systemd.notify("READY=1", self._status())

    def _status(self) -> str:
        return f"STATUS=run: {len(self.services)} services running ({', '.join(self.services)})"

    def _reload(self, config: RunConfig) -> None:
        """Stop, restart and start services so that they are those of ``config``."""
        new = config.services
        old = self.services
        removed = [name for name in old if name not in new]
        changed = [n for n in old if n in new and not old[n].spec.same_as(new[n])]
        kept = [name for name in old if name not in removed and name not in changed]
        self._stop_all([old.pop(name) for name in removed + changed], report=True)
        self._reserve_fds(new.values())
        started: list[RunningService] = []
        failed: dict[str, str] = {}
        for name, spec in new.items():
            if name in old:
                continue
            try:
                svc = self._start_one(spec)
            except StartError as exc:
                failed[name] = exc.reason
                _emit(sys.stderr, {"event": "failed", "service": exc.kind, "name": name,
                                   "error": exc.reason})  # fmt: skip
                continue
            old[name] = svc
            started.append(svc)
        self.services = {name: old[name] for name in new if name in old}
        _emit(sys.stderr, {
            "event": "reloaded", "reload": self.reloads, "kept": kept,
            "stopped": removed, "restarted": [n for n in changed if n not in failed],
            "started": [svc.name for svc in started if svc.name not in changed],
            "failed": failed,
        })  # fmt: skip
        try:
            self._announce(started)
        except OSError as exc:
            log.warning("run: cannot write the ready file: %s", exc)

    # ------------------------------------------------------------- helpers

    def _reserve_fds(self, specs: Iterable[ServiceSpec]) -> None:
        wanted = sum(
            (spec.values.get("max-conns") or 0) * spec.kind.fds_per_connection for spec in specs
        )
        raise_fd_limit(wanted + FD_HEADROOM)

    def _serve_metrics(self, addr: Address) -> Any:
        from ..plumbing.metrics import HubProbe, MetricsEndpoint, registry_of
        from .metrics import RunCollector

        probe = HubProbe()
        registry = registry_of(RunCollector(self.services, probe))
        try:
            endpoint = MetricsEndpoint(addr, registry, probe=probe)
        except ServiceError as exc:
            raise StartError("metrics", "run", f"--metrics: {exc}", usage=False) from None
        probe.start()
        return endpoint.start()

    def _start_one(self, spec: ServiceSpec) -> RunningService:
        values = spec.values
        if self.metrics is not None:
            values = {**values, RUN_METRICS: True}
        try:
            started = spec.kind.start(spec.name, values)
        except (ServiceError, OSError) as exc:
            raise StartError(spec.name, spec.kind.name, _reason(exc), usage=False) from None
        except ValueError as exc:
            raise StartError(spec.name, spec.kind.name, str(exc), usage=True) from None
        extras = started.extras or [{} for _ in started.listeners]
        svc = RunningService(spec, started, [])
        for listener, extra in zip(started.listeners, extras, strict=True):
            address, unix_path = listener_address(listener)
            svc.listeners.append({"address": address, **extra})
            if unix_path is not None:
                svc.unix_paths.append(unix_path)
        if started.ended is not None:
            svc.watcher = spawn(self._watch, svc, started.ended)
        return svc

    def _watch(self, svc: RunningService, ended: Event) -> None:
        """A service that ends by itself: its summary; the run ends with the last."""
        ended.wait()
        with self._turn:
            if self.services.get(svc.name) is not svc:
                return  # stopped by the runner meanwhile
            del self.services[svc.name]
            svc.watcher = None
            self._stop_all([svc], report=True)
            if not self.services:
                self._stopping = True
                self._done.send(None)

    def _stop_all(self, services: list[RunningService], *, report: bool) -> None:
        """Stop ``services`` at once, each with its drain timeout; then their
        summaries, in order."""
        for svc in services:
            if svc.watcher is not None:
                kill(svc.watcher)
        gts = [spawn(_stop_one, svc) for svc in services]
        for gt in gts:
            gt.wait()
        if report:
            for svc in services:
                _emit(sys.stderr, svc.summary())

    def _announce(self, started: Iterable[RunningService]) -> None:
        for svc in started:
            for listener in svc.listeners:
                extra = {k: v for k, v in listener.items() if k != "address"}
                announce(svc.kind, listener["address"], None, name=svc.name, **extra)
        ready: dict[str, Any] = {"event": "ready", "file": self.file, "services": {
            svc.name: {"service": svc.kind,
                       "address": svc.listeners[0]["address"] if svc.listeners else None,
                       "listeners": svc.listeners}
            for svc in self.services.values()
        }}  # fmt: skip
        if self.metrics_endpoint is not None:
            ready["metrics"] = format_address(self.metrics_endpoint.address)
        if self.reloads:
            ready["reload"] = self.reloads
        if self.ready_file:
            _write_atomically(self.ready_file, json.dumps(ready, indent=2) + "\n")
        _emit(sys.stdout, ready)


def _stop_one(svc: RunningService) -> None:
    try:
        svc.started.stop(svc.spec.values.get("drain-timeout"))
    except Exception:
        log.exception("run: error while stopping %s", svc.name)
    for cleanup in svc.started.cleanup:
        try:
            cleanup()
        except Exception:
            log.exception("run: error while closing %s", svc.name)
    for path in svc.unix_paths:  # a clean stop leaves no socket file behind
        with contextlib.suppress(OSError):
            os.unlink(path)


def _reason(exc: Exception) -> str:
    return describe_os_error(exc) if isinstance(exc, OSError) else str(exc)


def _emit(stream: Any, event: dict[str, Any]) -> None:
    stream.write(json.dumps(event) + "\n")
    stream.flush()


def _write_atomically(path: str, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees the old file or the new, whole."""
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
