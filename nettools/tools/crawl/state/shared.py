"""A crawl whose state is in Redis, done by any number of processes: ``SharedCrawl``.

    frontier = SharedFrontier.open(parse_state("redis://redis.example:6379/0"))
    shared = SharedCrawl(Crawler(["https://docs.example/"]), frontier, worker="a")
    shared.start()            # the crawl's state, and its start URLs (any process may)
    why = shared.run()        # "done", "stopped" or "interrupted"
    result = shared.result()  # the report's data, read back from Redis

Each process runs the one crawl engine (``engine.py``) for its visits -- the
same robots.txt rules, requests, retries, redirects and link extraction --
but the crawl's state is not in its memory: it leases links from Redis (the
lease holds one of the host's slots, so ``--per-host`` holds across all
processes), visits them, and hands each outcome back with what the page led
to, which Redis admits (``scripts.py``).  A lease is renewed while its visit
runs; one that runs out (its process died, or lost Redis for a lease) goes
back to the head of its host's queue for any process, and a late answer for
it is ignored.  No process is special: each one also puts expired leases
back, and any may start the crawl or write its report.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from yarl import URL

from ....kernel.greenthread import kill, sleep, spawn, spawn_after
from ....kernel.pool import GreenPool
from ....kernel.sync import Event
from ...plumbing.service import stop_on_signals
from ..engine import Crawler
from ..progress import PROGRESS_EVERY, Progress, reporting
from ..results import CrawlResult, Link
from ..scope import KINDS
from ..urls import host_key
from .frontier import Job, SharedFrontier, StateUnavailable, finishing
from .reading import read_result

__all__ = ["SharedCrawl", "SharedGates", "SharedGate", "DEFAULT_LEASE"]

log = logging.getLogger("nettools.crawl")

#: Seconds a leased link stays a worker's without a renewal.
DEFAULT_LEASE = 30.0
#: Longest pause between two asks for work when there is none (seconds).
IDLE_MAX = 0.2
#: Shortest pause, doubled while there is still none.
IDLE_MIN = 0.005
#: Links whose kind (page, external...) a process remembers before starting over.
KINDS_KEPT = 200_000


class SharedGate:
    """One host's requests in a shared crawl, as ``politeness.Gate`` offers
    them to the requester: the lease already took the host's slot and spaced
    the first request of a visit; further requests (a retry, a GET after a
    HEAD, the page after robots.txt) reserve their start in Redis when the
    host is spaced or held off."""

    __slots__ = ("frontier", "host", "delay", "held_until", "failure", "closed", "prepaid")

    def __init__(self, frontier: SharedFrontier, host: str) -> None:
        self.frontier = frontier
        self.host = host
        self.delay = 0.0
        self.held_until = 0.0
        self.failure: tuple[str, str] | None = None
        self.closed = 1  # until the host has answered: as Gate
        self.prepaid = 0  # starts the leases already spaced

    @property
    def opened(self) -> bool:
        return self.closed == 0

    def answered(self) -> None:
        self.closed = 0

    def __enter__(self) -> None:
        if self.failure is None:
            self.wait_turn()

    def __exit__(self, *exc: Any) -> None:
        pass

    def wait_turn(self, at_least: float = 0.0) -> None:
        if at_least > 0:
            sleep(at_least)
        if self.prepaid > 0:
            self.prepaid -= 1
            return
        if not self.delay and self.held_until <= time.monotonic():
            return  # not spaced, not held off: nothing to reserve
        wait, failure = self.frontier.respace(self.host)
        if failure is not None:
            self.failure = failure
        elif wait > 0:
            sleep(wait)


class SharedGates:
    """``politeness.HostGates`` for a shared crawl: the per-host state is in Redis."""

    def __init__(self, frontier: SharedFrontier, delay: float = 0.0) -> None:
        self.frontier = frontier
        self.delay = delay
        self._gates: dict[str, SharedGate] = {}

    def slot(self, host: str) -> SharedGate:
        gate = self._gates.get(host)
        if gate is None:
            gate = self._gates[host] = SharedGate(self.frontier, host)
        return gate

    def leased(self, job: Job) -> None:
        """A lease of ``job``: its host's state as Redis gave it."""
        gate = self.slot(job.host)
        gate.delay = job.delay
        if job.delay:
            gate.prepaid += 1
        if job.opened:
            gate.closed = 0

    def set_delay(self, host: str, delay: float | None) -> None:
        if delay and delay > self.delay and delay != self.slot(host).delay:
            self.slot(host).delay = delay
            self.frontier.set_delay(host, delay)

    def hold_off(self, host: str, seconds: float) -> None:
        self.slot(host).held_until = time.monotonic() + seconds
        self.frontier.hold(host, seconds)

    def settle(self, host: str, kind: str, message: str) -> None:
        gate = self.slot(host)
        if gate.failure is None:
            gate.failure = (kind, message)
            self.frontier.settle(host, kind, message)


class SharedCrawl:
    """This process's part in the crawl kept in ``frontier``, visiting with
    ``crawler``'s rules (its ``gates`` and robots.txt store are replaced by
    the shared ones).  ``worker`` names this process in the summary."""

    def __init__(
        self, crawler: Crawler, frontier: SharedFrontier, *, worker: str,
        concurrency: int | None = None, lease: float = DEFAULT_LEASE, patience: float = 60.0,
    ) -> None:
        if lease <= 0:
            raise ValueError("the lease must be longer than 0s")
        self.crawler = crawler
        self.frontier = frontier
        self.worker = worker
        self.concurrency = concurrency or crawler.concurrency
        self.lease = lease
        self.patience = patience  # seconds to keep trying while Redis is out of reach
        self.token = f"{worker.replace(' ', '_')}/{secrets.token_hex(6)}"
        self.gates = SharedGates(frontier, crawler.gates.delay)
        crawler.gates = crawler.requester.gates = self.gates  # type: ignore[assignment]
        crawler.plain_store = frontier
        self.visited = 0
        self.stopped: str | None = None
        self._held: dict[str, Job] = {}
        self._room = Event()
        self._reported = 0  # requests already counted in Redis
        self._check_links = crawler.admission.check_links
        self._outbox: list[tuple[tuple, Event]] = []  # visits' ends for the next round trip
        self._outbox_ready = Event()
        self._kinds: dict[str, tuple[str, str] | None] = {}

    # ------------------------------------------------------------ starting

    def start(self, *, fresh: bool = False) -> None:
        """Make the crawl's state in Redis (or join the one there, if it is
        this crawl) and admit its start URLs and sitemaps; a crawl that was
        stopped for all (--max-time) goes on."""
        crawler = self.crawler
        if fresh:
            self.frontier.wipe()
        identity = crawler.identity
        self.frontier.create(identity, {**crawler.settings, "lease": self.lease})
        self.frontier.stop("")
        self.frontier.seed(self._classified(crawler.seeds), last=False)
        if identity["sitemap"]:
            self.frontier.seed(self._classified(crawler.sitemap_urls()), last=False)
        self.frontier.seed([], last=True)

    def _classified(self, seeds: list[URL]) -> list[tuple[str, str, str]]:
        return [(str(url), *kind_host) for url in seeds
                if (kind_host := self._classify(str(url), url, seed=True)) is not None]  # fmt: skip

    # ------------------------------------------------------------- working

    def run(self) -> str:
        """Visit leased links until the crawl is done ("done"), stopped for all
        ("stopped": max-time), or this process is stopped ("interrupted")."""
        keeper = spawn(self._keep)
        committer = spawn(self._committer)
        timer = None
        max_time = self.crawler.max_time
        if max_time:
            timer = spawn_after(max_time, self._stop_all, "max-time")
        try:
            return self._work()
        finally:
            kill(keeper)
            kill(committer)
            if timer is not None:
                timer.cancel()
            self._give_back()

    def stop(self, reason: str = "interrupted") -> None:
        """This process takes no more links; visits under way finish (within
        the crawler's grace), or go back to the queue."""
        if self.stopped is None:
            self.stopped = reason
            self.crawler.stop(reason)
            self._wake()

    def stop_on_signals(self) -> contextlib.AbstractContextManager[None]:
        return stop_on_signals(self.stop)

    def _stop_all(self, reason: str) -> None:
        self.frontier.stop(reason)
        self.stop(reason)

    def _wake(self) -> None:
        if not self._room.ready():
            self._room.send(None)

    def _work(self) -> str:
        idle = IDLE_MIN
        visits = GreenPool(self.concurrency)
        lost_since: float | None = None
        while self.stopped is None:
            room = self.concurrency - len(self._held)
            if room <= 0:
                self._room.wait(IDLE_MAX)
                self._room = Event()
                continue
            try:
                jobs, ready_in = self.frontier.lease(self.token, room, self.lease)
            except StateUnavailable as exc:
                # Redis restarting, or out of reach: try again for a while; the
                # visits under way go on, and their leases wait in Redis.
                now = time.monotonic()
                if lost_since is None:
                    lost_since = now
                    log.warning("%s: trying again for %gs", exc, self.patience)
                if now - lost_since > self.patience:
                    visits.waitall()
                    raise
                sleep(min(1.0, IDLE_MAX * 2))
                continue
            lost_since = None
            for job in jobs:
                self._held[job.id] = job
                self.gates.leased(job)
                visits.spawn_n(self._visit, job)
            if jobs:
                idle = IDLE_MIN
                continue
            if ready_in is None and not self._held:
                meta = self.frontier.meta()
                if "identity" not in meta:
                    raise StateUnavailable(f"the crawl state at {self.frontier.where} is gone "
                                           "(Redis restarted without persistence?)")
                if meta.get("done"):
                    return "done"
                if meta.get("stopped"):
                    self.stop(meta["stopped"])
                    break
            pause = min(idle, IDLE_MAX) if ready_in is None else min(max(ready_in, IDLE_MIN),
                                                                       IDLE_MAX)  # fmt: skip
            idle *= 2
            self._room.wait(pause)
            self._room = Event()
        visits.waitall()  # the crawler's grace cuts them if they take too long
        return "stopped" if self.stopped not in (None, "interrupted") else "interrupted"

    def _visit(self, job: Job | None) -> None:
        """Visit ``job``, and the next ones Redis hands back with its outcome."""
        while job is not None:
            job = self._visit_one(job)

    def _visit_one(self, job: Job) -> Job | None:
        crawler = self.crawler
        link = Link(job.url, "page" if job.kind == "p" else "external", 0,
                    parsed_url=URL(job.url, encoded=True))  # fmt: skip
        anchors = crawler.admission.fragment_targets
        if job.anchors:
            anchors.add(job.url)
        give_back = False
        following: Job | None = None
        try:
            visited = crawler.visit(link)
            if visited is None:  # stopped before it was done: back to the queue
                give_back = True
                return None
            targets, via = visited
            classify = self._classify
            sent = [(key, *kind_host, frag) for key, url, frag in targets
                    if (kind_host := classify(key, url)) is not None]  # fmt: skip
            requests = crawler.requests - self._reported
            self._reported += requests
            _, more = self._commit(finishing(
                self.token, job, link.outcome(), answered=link.status is not None,
                requests=requests, worker=self.worker, targets=sent, via=via,
                more=0 if self.stopped else 1, lease=self.lease,
            ))  # fmt: skip
            self.visited += 1
            for following in more:  # the next link, in the same round trip
                self._held[following.id] = following
                self.gates.leased(following)
        except Exception as exc:  # noqa: BLE001 - Redis away: the lease runs out, and
            # whoever reaps it visits the link again
            log.warning("%s: the visit's outcome was not kept: %s: %s", job.url,
                        type(exc).__name__, exc)  # fmt: skip
        finally:
            anchors.discard(job.url)
            if not give_back:
                self._held.pop(job.id, None)
            self._wake()
        return following

    def _commit(self, finished: tuple) -> tuple[bool, list[Job]]:
        """Hand one visit's end to Redis: with the others that end meanwhile, in
        one round trip (a group commit: the busier, the bigger the batch)."""
        done = Event()
        self._outbox.append((finished, done))
        if not self._outbox_ready.ready():
            self._outbox_ready.send(None)
        return done.wait()

    def _committer(self) -> None:
        while True:
            if not self._outbox:
                self._outbox_ready.wait()
                self._outbox_ready = Event()
                continue
            batch, self._outbox = self._outbox, []
            try:
                answers = self.frontier.finish_many([finished for finished, _ in batch])
            except Exception as exc:  # noqa: BLE001 - each visit hears of it
                for _, done in batch:
                    done.send(exc=exc)
            else:
                for (_, done), answer in zip(batch, answers, strict=True):
                    done.send(answer)

    def _classify(self, key: str, url: URL, seed: bool = False) -> tuple[str, str] | None:
        """``(kind, host)`` of a link (``Scope.kind_of``), or None to leave it alone;
        remembered, as pages of one site repeat their links."""
        known = self._kinds.get(key, self)
        if known is self:
            if len(self._kinds) > KINDS_KEPT:
                self._kinds.clear()
            kind = self.crawler.scope.kind_of(key, url, self._check_links, seed=seed)
            known = None if kind is None else (kind, host_key(url) if kind in KINDS else "")
            self._kinds[key] = known
        return known  # type: ignore[return-value]

    def _give_back(self) -> None:
        """Leases still held (visits cut by a stop) go back to the queue now,
        rather than when they run out."""
        for job in list(self._held.values()):
            with contextlib.suppress(Exception):
                self.frontier.release(self.token, job)
        self._held.clear()

    def _keep(self) -> None:
        """Renew this process's leases, and put back any that ran out (whoever's)."""
        every = max(0.05, self.lease / 3)
        while True:
            sleep(every)
            try:
                self.frontier.renew(self.token, list(self._held.values()), self.lease)
                self.frontier.reap()
            except Exception as exc:  # noqa: BLE001 - Redis away for a moment: try again
                log.warning("shared state: %s: %s", type(exc).__name__, exc)

    # ------------------------------------------------------------ watching

    def progress(self) -> Progress:
        meta = self.frontier.meta()
        admitted = int(meta.get("seq", 0))
        left = int(meta.get("pending", 0))
        return Progress(admitted - left, admitted, int(meta.get("requests", 0)))

    def reporting(
        self, show: Callable[[Progress], None], every: float = PROGRESS_EVERY
    ) -> contextlib.AbstractContextManager[None]:
        return reporting(self.progress, show, every)

    def result(self) -> CrawlResult:
        """The crawl as the state holds it now (by every process so far)."""
        return read_result(self.frontier, seeds=[str(u) for u in self.crawler.seeds],
                           stopped=self.stopped)  # fmt: skip
