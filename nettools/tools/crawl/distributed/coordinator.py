"""The coordinator of a distributed crawl: a ``Fetcher`` whose requests workers do.

    coord = Coordinator("tcp://0.0.0.0:5557", lease=30.0)
    endpoint = coord.start()
    result = Crawler(["https://docs.example/"], fetcher=coord).run()
    coord.close()  # tells the workers the crawl is done

Flow control is by credit: a worker announces how many jobs it can take
(``--concurrency``) and every result hands back the slot it used; the
coordinator sends a job only to a worker with credit (the one with the most).
Jobs wait at the coordinator while no worker has room, so workers may join
late or leave at any time.

Nothing is lost when a worker dies.  Each job sent is leased to its worker for
``lease`` seconds; a worker's heartbeats (every ``heartbeat`` seconds, a
quarter of the lease) renew the leases of the jobs it is working on, so a slow
fetch on a live worker keeps its lease.  A job whose lease runs out -- its
worker died, was cut off or lost it -- goes back to the head of the queue for
another worker (at most ``MAX_ISSUES`` times, then the link fails as "lost").
The first result for a job wins; a late one from the job's earlier holder is
counted and ignored, so results are idempotent by job (one job per request).
A worker the coordinator has not heard from for a lease is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from ....green import zmq
from ....green.zmq.endpoints import Endpoint, EndpointError, open_socket, parse_endpoint
from ....kernel.greenthread import kill, sleep, spawn
from ....kernel.sync import Event
from ....web.client import FetchError
from ...plumbing.sizecap import SizeCap
from ..fetcher import Fetched
from .wire import MAX_MESSAGE, PROTOCOL_VERSION, MalformedMessage, decode, encode, result_outcome

__all__ = ["Coordinator", "bind_endpoint", "heartbeat_for"]

log = logging.getLogger("nettools.crawl")

#: Times a job is sent before its link fails as lost.
MAX_ISSUES = 4
#: Seconds the coordinator waits for the workers' goodbyes at the end.
CLOSE_WAIT = 2.0


def bind_endpoint(text: str) -> str:
    """The URL of the endpoint a coordinator binds, from ``URL`` or ``bind:URL``;
    ``EndpointError`` if it is malformed or says connect."""
    ep = parse_endpoint(text)
    if not ep.bind:
        raise EndpointError(f"the coordinator binds: {text!r} says connect")
    return ep.url


def heartbeat_for(lease: float) -> float:
    """Seconds between heartbeats for a lease of ``lease`` seconds."""
    return min(5.0, max(0.05, lease / 4))




@dataclass(eq=False)
class _Job:
    id: int
    url: str
    frames: list[bytes]
    done: Event = field(default_factory=Event)
    worker: bytes | None = None
    deadline: float = 0.0
    issues: int = 0
    over: bool = False  # answered or given up: a queued copy is skipped


@dataclass(eq=False)
class _Worker:
    ident: bytes
    name: str
    session: str
    credit: int
    last_seen: float
    jobs: set[int] = field(default_factory=set)
    draining: bool = False  # its results hand back no slot
    given: int = 0  # when it was last sent a job


class Coordinator:
    """The coordinator's side: a ``Fetcher`` whose requests are done by workers.

    ``endpoint`` is bound (``tcp://0.0.0.0:5557``; port 0 or ``*`` picks a
    free port: ``start()`` returns the endpoint really bound).  ``fetch``
    settings (``user_agent``, ``timeout``, ``max_body``, ``per_host``) are
    handed to each worker for its HttpClient.  No job is sent before
    ``min_workers`` workers have joined.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        lease: float = 30.0,
        max_message: int = MAX_MESSAGE,
        user_agent: str | None = None,
        timeout: float = 30.0,
        max_body: int = 10 * 2**20,
        per_host: int = 8,
        min_workers: int = 1,
        context: Any = None,
    ) -> None:
        if lease <= 0:
            raise ValueError("the lease must be longer than 0s")
        self.endpoint = endpoint
        self.lease = lease
        self.heartbeat = heartbeat_for(lease)
        self.max_message = max_message
        self.min_workers = min_workers
        self.fetch_options = {"user_agent": user_agent, "timeout": timeout,
                              "max_body": max_body, "per_host": per_host}  # fmt: skip
        self.run_id = secrets.token_hex(8)
        # An own context by default: terminating it is what makes sure the
        # last messages ("done", "bye") leave before the process exits.
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock: Any = None
        self._threads: list = []
        self._jobs: dict[int, _Job] = {}
        self._queue: deque[_Job] = deque()
        self._workers: dict[bytes, _Worker] = {}
        self._next_id = 0
        self._given = 0  # jobs sent, to take turns among workers
        self._closing: Event | None = None
        # Figures for the summary.
        self.jobs_by_worker: dict[str, int] = {}
        self.reissued = 0
        self.late = 0
        self.lost = 0
        self.malformed = 0
        self.oversized = 0  # messages over the cap: dropped (by self._cap)
        # A ROUTER's first frame is the sender's routing id: at most 255 bytes.
        self._cap = SizeCap(max_message + 255, self, log, "crawl coordinator")
        self.joined = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Bind and start serving workers; the endpoint really bound."""
        # The size cap is ours, not libzmq's ZMQ_MAXMSGSIZE (see sizecap).
        self._sock, real = open_socket(self._ctx, zmq.ROUTER, Endpoint(self.endpoint, True))
        self.endpoint = real
        self._threads = [spawn(self._receive), spawn(self._tick)]  # close() knows the order
        return real

    def close(self) -> None:
        """Tell every worker the crawl is done, wait (a little) for their goodbyes, stop."""
        if self._sock is not None and self._threads:
            kill(self._threads.pop())  # the lease keeper
            # Until each worker has answered "done" with "bye", closing could
            # lose the "done": a socket closed with unread data resets the
            # connection, and the worker's system drops what it had not read yet.
            self._closing = Event()
            for ident in list(self._workers):
                self._send(ident, b"done", {})
            if self._workers:
                self._closing.wait(CLOSE_WAIT)
        for gt in self._threads:
            kill(gt)
        self._threads = []
        if self._sock is None:
            return
        self._sock.close(linger=1000)
        self._sock = None
        if self._own_ctx:
            self._ctx.term()
        for job in list(self._jobs.values()):
            self._finish(job, FetchError(job.url, "other", "the coordinator stopped"))

    # ----------------------------------------------------------- the fetcher

    def fetch(
        self, method: str, url: URL, *, follow_redirects: bool, max_body: int | None = None,
        links: bool = False, anchors: bool = False, body: bool = False,
    ) -> Fetched:
        """Have a worker do the request; waits (however long) for one to answer."""
        self._next_id += 1
        key = str(url)
        job = _Job(self._next_id, key, encode(b"job", {
            "run": self.run_id, "id": self._next_id, "method": method, "url": key,
            "follow": follow_redirects, "max_body": max_body, "links": links,
            "anchors": anchors, "body": body,
        }))  # fmt: skip
        self._jobs[job.id] = job
        self._queue.append(job)
        self._dispatch()
        try:
            outcome = job.done.wait()
        finally:
            if not job.over:  # the crawl was cut: forget the job
                self._drop(job)
        if isinstance(outcome, FetchError):
            raise outcome
        return outcome

    def summary(self) -> dict:
        """The ``workers`` object of the crawl's summary."""
        return {
            "workers": {
                "joined": self.joined,
                "connected": len(self._workers),
                "jobs": dict(sorted(self.jobs_by_worker.items())),
                "reissued": self.reissued,
                "late_results": self.late,
                "lost": self.lost,
                "malformed": self.malformed,
                "oversized": self.oversized,
            }
        }

    # ------------------------------------------------------------- dispatch

    def _send(self, ident: bytes, kind: bytes, obj: dict) -> None:
        # A ROUTER never blocks: a message to a worker that is gone is dropped,
        # and the lease brings its job back.
        with contextlib.suppress(zmq.ZMQError):
            self._sock.send_multipart([ident, *encode(kind, obj)], zmq.NOBLOCK)

    def _dispatch(self) -> None:
        """Send queued jobs to the workers with the most free slots."""
        if self.joined < self.min_workers:
            return
        while self._queue and self._sock is not None:
            # The most free slots; between equals, the one that waited longest.
            worker = max(self._workers.values(), key=lambda w: (w.credit, -w.given), default=None)
            if worker is None or worker.credit <= 0 or self._closing is not None:
                return
            job = self._queue.popleft()
            if job.over:
                continue
            job.worker = worker.ident
            job.deadline = time.monotonic() + self.lease
            job.issues += 1
            worker.credit -= 1
            worker.jobs.add(job.id)
            self._given += 1
            worker.given = self._given
            with contextlib.suppress(zmq.ZMQError):
                self._sock.send_multipart([worker.ident, *job.frames], zmq.NOBLOCK)

    def _finish(self, job: _Job, outcome: Fetched | FetchError) -> None:
        self._drop(job)
        job.done.send(outcome)

    def _drop(self, job: _Job) -> None:
        job.over = True
        self._jobs.pop(job.id, None)
        self._unassign(job)

    def _unassign(self, job: _Job) -> None:
        """Take ``job`` off the list of the worker it was given to."""
        holder = self._workers.get(job.worker) if job.worker is not None else None
        if holder is not None:
            holder.jobs.discard(job.id)
        job.worker = None

    def _reissue(self, job: _Job, why: str) -> None:
        self._unassign(job)
        if job.issues >= MAX_ISSUES:
            self.lost += 1
            self._finish(job, FetchError(job.url, "other",
                                         f"lost: {job.issues} workers took it, none answered"))
            return
        self.reissued += 1
        log.info("re-issuing %s (%s)", job.url, why)
        self._queue.appendleft(job)

    def _forget(self, worker: _Worker, why: str) -> None:
        """Drop ``worker``; its jobs go to others."""
        self._workers.pop(worker.ident, None)
        if self._closing is not None and not self._workers and not self._closing.ready():
            self._closing.send(None)
        if worker.jobs:
            log.warning("worker %s %s: re-issuing its %d jobs", worker.name, why, len(worker.jobs))
        for job_id in sorted(worker.jobs):
            job = self._jobs.get(job_id)
            if job is not None and job.worker == worker.ident:
                self._reissue(job, f"worker {worker.name} {why}")
        worker.jobs.clear()

    # -------------------------------------------------------------- receive

    def _receive(self) -> None:
        sock, recv = self._sock, self._cap.recv
        while True:
            frames = recv(sock)
            ident = frames[0]
            try:
                kind, obj, body = decode(frames, 1)
                self._handle(ident, kind, obj, body)
            except Exception as exc:  # noqa: BLE001 - whatever a peer sends, serve on
                self.malformed += 1
                log.warning("malformed message from a worker: %s: %s", type(exc).__name__, exc)
            self._dispatch()

    def _handle(self, ident: bytes, kind: bytes, obj: dict, body: bytes | None) -> None:
        now = time.monotonic()
        worker = self._workers.get(ident)
        if worker is not None:
            worker.last_seen = now
        if kind == b"hello":
            self._hello(ident, worker, obj, now)
        elif kind == b"result":
            self._result(ident, worker, obj, body)
        elif worker is None:
            if kind != b"bye":
                self._send(ident, b"reset", {})
        elif kind == b"beat":
            for job_id in obj["jobs"]:
                job = self._jobs.get(job_id)
                if job is not None and job.worker == ident:
                    job.deadline = now + self.lease
        elif kind == b"drain":
            worker.credit = 0
            worker.draining = True
            self._send(ident, b"drained", {})
        elif kind == b"bye":
            self._forget(worker, "left")
            self._send(ident, b"done", {})  # "heard you": the worker may close
        else:
            raise MalformedMessage(f"unknown kind {kind[:20]!r}")

    def _hello(self, ident: bytes, worker: _Worker | None, obj: dict, now: float) -> None:
        if obj.get("v") != PROTOCOL_VERSION:
            raise MalformedMessage(f"protocol version {obj.get('v')!r}, not {PROTOCOL_VERSION}")
        session = str(obj["session"])
        if self._closing is not None:  # too late: the crawl is over
            self._send(ident, b"done", {})
            return
        if worker is None or worker.session != session:
            if worker is not None:  # the same peer starting over
                self._forget(worker, "started over")
            name = str(obj["name"])[:100]
            credit = int(obj["credit"])
            self._workers[ident] = _Worker(ident, name, session, credit, now)
            self.joined += 1
            log.info("worker %s joined (%d slots)", name, credit)
        self._send(ident, b"welcome", {
            "v": PROTOCOL_VERSION, "run": self.run_id, "heartbeat": self.heartbeat,
            "lease": self.lease, "fetch": self.fetch_options,
        })  # fmt: skip

    def _result(self, ident: bytes, worker: _Worker | None, obj: dict, body: bytes | None) -> None:
        if worker is None:
            self._send(ident, b"reset", {})
        elif not worker.draining:  # a slot is free again, whichever run the job was of
            worker.credit += int(obj.get("ask", 1))
        if obj["run"] != self.run_id:  # sent to the coordinator before this one
            self.late += 1
            return
        if worker is not None:
            worker.jobs.discard(obj["id"])
        job = self._jobs.get(obj["id"])
        if job is None:  # answered already (it was re-issued), or cut
            self.late += 1
            return
        name = worker.name if worker is not None else "?"
        self.jobs_by_worker[name] = self.jobs_by_worker.get(name, 0) + 1
        try:
            outcome = result_outcome(job.url, obj, body)
        except Exception as exc:  # noqa: BLE001 - the link fails, the crawl goes on
            self.malformed += 1
            log.warning("malformed result from worker %s: %s: %s", name, type(exc).__name__, exc)
            outcome = FetchError(job.url, "protocol", f"malformed result from worker {name}")
        self._finish(job, outcome)

    # ---------------------------------------------------------------- leases

    def _tick(self) -> None:
        while True:
            sleep(self.heartbeat)
            now = time.monotonic()
            for worker in list(self._workers.values()):
                if now - worker.last_seen > self.lease:
                    self._forget(worker, f"silent for {self.lease:g}s")
                else:
                    self._send(worker.ident, b"beat", {})
            for job in list(self._jobs.values()):
                if job.worker is not None and job.deadline < now:
                    self._reissue(job, "lease expired")
            self._dispatch()

