"""One /metrics for every service of a run file (``nettools run --metrics ADDR``).

Each service reports the families its command's ``--metrics`` would, with two
labels: ``service`` (its type) and ``name`` (its name in the file); the hub's
families and ``nettools_info`` come once, as ``service="run"``.  A service's
connection families are those of the ``net.Server``s accepting on its
listeners (or that ``Started.servers`` names), kept once seen so that a server
restarted under it (a forward rule disabled and enabled) keeps its counts; a
service that is stopped or reloaded away leaves with its counts.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._version import __version__
from ...net import live_servers
from ..plumbing.metrics import (
    Families,
    HubProbe,
    add_server_families,
    add_stats_families,
    families_metrics,
)
from ..plumbing.service import Stats

if TYPE_CHECKING:
    from .runner import RunningService

__all__ = ["RunCollector"]


class RunCollector:
    """A ``prometheus_client`` collector of the services in ``services`` (the
    runner's dict of ``RunningService``s, read at each scrape)."""

    def __init__(self, services: Any, probe: HubProbe) -> None:
        self.services = services
        self.probe = probe
        self._seen: dict[int, tuple[Any, dict[int, Any]]] = {}  # id(started) -> servers

    def _servers(self, svc: RunningService) -> list[Any]:
        started = svc.started
        entry = self._seen.get(id(started))
        if entry is None or entry[0] is not started:
            entry = self._seen[id(started)] = (started, {})
        seen = entry[1]
        if started.servers is not None:
            now = list(started.servers())
        else:
            mine = {id(sock) for sock in started.listeners if not isinstance(sock, str)}
            now = [s for s in live_servers() if id(s.socket) in mine]
        for server in now:
            seen.setdefault(id(server), server)
        return list(seen.values())

    def collect(self) -> Iterator[Any]:
        running = list(self.services.values())
        alive = {id(svc.started) for svc in running}
        for key in [k for k in self._seen if k not in alive]:
            del self._seen[key]
        hub = Families("run", name="")
        hub.gauge("nettools_info", "The nettools version.", 1, version=__version__)
        self.probe.add_to(hub)
        every = [hub]
        for svc in running:
            f = Families(svc.kind, name=svc.name)
            add_server_families(f, self._servers(svc))
            started = svc.started
            stats = started.metrics if started.metrics is not None else started.stats
            if isinstance(stats, Stats):
                add_stats_families(f, stats)
                for source in stats.metric_sources:
                    source(f)
            every.append(f)
        return iter(families_metrics(every))
