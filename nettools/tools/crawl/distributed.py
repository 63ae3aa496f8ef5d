"""A crawl spread over machines: one coordinator, any number of workers, over ZeroMQ.

    # the coordinator: the usual Crawler, whose requests go to the workers
    coord = Coordinator("tcp://0.0.0.0:5557", lease=30.0)
    endpoint = coord.start()
    result = Crawler(["https://docs.example/"], fetcher=coord).run()
    coord.close()  # tells the workers the crawl is done

    # on any machine, any number of times
    CrawlWorker("tcp://coordinator.example:5557", concurrency=16).run()

The coordinator runs the one crawl engine (``engine.py``): frontier,
de-duplication, scope, depth, robots.txt rules, politeness (per-host slots,
delays, Crawl-delay, Retry-After) and the report all stay there.  Only the
engine's fetch-and-parse step (``fetcher.py``) moves: ``Coordinator`` is a
``Fetcher`` whose ``fetch`` sends a job to a worker and waits for the answer.
A job is sent only from inside the engine's per-host slot, so no more requests
are in flight than the crawl's politeness allows, whichever worker does them.
Workers fetch with their own ``HttpClient``, parse HTML and normalise the
links, and send back what the engine reads (status, final URL, content type,
size, the Location and Retry-After headers, links and anchors; the body only
for robots.txt and sitemaps).

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

Wire format (version 1)
-----------------------

A ROUTER socket at the coordinator (binds), a DEALER per worker (connects).
A message is two frames, a kind (ASCII) and a JSON object (UTF-8), plus a
third frame with the raw body for results that carry one.  No message may
exceed ``max_message`` bytes (libzmq's ``MAXMSGSIZE`` on both sockets; a
worker whose result would be larger reports an error for that job instead).

Worker to coordinator:

``hello``   ``v`` (1), ``name``, ``session`` (random, new for each joining),
            ``credit`` (free slots): join; repeated until welcomed
``result``  ``run``, ``id``, ``ask`` (slots handed back, 1; 0 while
            draining), then either ``error``: ``{"kind", "message"}`` (no
            response: a ``FetchError``), or ``status``, ``final_url``,
            ``content_type``, ``size``, ``truncated``, ``elapsed``,
            ``headers`` (Location, Retry-After), ``links`` (``[[key,
            fragment], ...]`` or null), ``anchors`` (list or null), ``body``
            (true: the third frame is the body)
``beat``    ``jobs``: the ids of the jobs it is working on (renews their leases)
``drain``   take no more jobs from this worker (it is stopping)
``bye``     the worker leaves; jobs still leased to it are re-issued at once

Coordinator to worker:

``welcome`` ``v``, ``run`` (random, new for each crawl), ``heartbeat``,
            ``lease``, ``fetch`` (``user_agent``, ``timeout``, ``max_body``,
            ``per_host``: the worker's HttpClient settings)
``job``     ``run``, ``id``, ``method``, ``url`` (the normalised key),
            ``follow`` (follow redirects), ``max_body`` (or null), ``links``,
            ``anchors``, ``body`` (what to send back; see ``Fetcher.fetch``)
``beat``    ``{}``: the coordinator is alive (every heartbeat)
``drained`` no job will follow (the answer to ``drain``)
``reset``   "who are you?": sent to a sender the coordinator does not know
            (it restarted, or dropped the worker); the worker says hello again
``done``    the crawl is over, or the answer to ``bye``: the worker exits
            (``nettools crawl-worker`` exits 0); it answers ``bye``, which the
            coordinator waits for (``CLOSE_WAIT`` at most) before closing

Messages of an unknown kind, or malformed ones, are counted and ignored.
Results of another ``run`` (a coordinator that restarted) are ignored.  Anyone
who can reach the coordinator's endpoint can join or answer jobs: run it on a
trusted network.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from yarl import URL

from ...green import zmq
from ...green.zmq.endpoints import Endpoint, open_socket
from ...kernel.greenthread import kill, sleep, spawn
from ...kernel.pool import GreenPool
from ...kernel.sync import Event, Semaphore
from ...web.client import DEFAULT_USER_AGENT, FetchError, HttpClient
from .fetcher import Fetched, LocalFetcher, crawl_client

__all__ = ["Coordinator", "CrawlWorker", "MAX_MESSAGE", "PROTOCOL_VERSION", "worker_agent"]

log = logging.getLogger("nettools.crawl")

PROTOCOL_VERSION = 1
#: Default cap on one message (a result carries a page's links, or a sitemap's body).
MAX_MESSAGE = 64 * 2**20
#: Times a job is sent before its link fails as lost.
MAX_ISSUES = 4
#: Seconds between a worker's hellos while it waits to be welcomed.
HELLO_EVERY = 1.0
#: Seconds between attempts while the worker is not connected yet.
CONNECT_POLL = 0.05
#: Seconds the coordinator waits for the workers' goodbyes at the end.
CLOSE_WAIT = 2.0
#: Longest wait, in heartbeats, for the coordinator's "drained" when stopping.
DRAIN_BEATS = 4


def heartbeat_for(lease: float) -> float:
    """Seconds between heartbeats for a lease of ``lease`` seconds."""
    return min(5.0, max(0.05, lease / 4))


def worker_agent(user_agent: str | None, name: str) -> str:
    """The User-Agent a worker sends: the crawl's, naming the worker (so a site
    operator -- or a test -- can tell which machine asked)."""
    return f"{user_agent or DEFAULT_USER_AGENT} crawl-worker/{name}"


def _encode(kind: bytes, obj: dict, body: bytes | None = None) -> list[bytes]:
    frames = [kind, json.dumps(obj, separators=(",", ":")).encode()]
    if body is not None:
        frames.append(body)
    return frames


class _Malformed(ValueError):
    """A message that does not follow the wire format."""


def _decode(frames: list[bytes], first: int = 0) -> tuple[bytes, dict, bytes | None]:
    rest = frames[first:]
    if len(rest) not in (2, 3):
        raise _Malformed(f"{len(rest)} frames")
    try:
        obj = json.loads(rest[1])
    except ValueError as exc:
        raise _Malformed(f"bad JSON: {exc}") from None
    if not isinstance(obj, dict):
        raise _Malformed("not a JSON object")
    return bytes(rest[0]), obj, (bytes(rest[2]) if len(rest) == 3 else None)


# ----------------------------------------------------------------- coordinator


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
        self.joined = 0

    # ------------------------------------------------------------ lifecycle

    def start(self) -> str:
        """Bind and start serving workers; the endpoint really bound."""
        options = {zmq.MAXMSGSIZE: self.max_message}
        self._sock, real = open_socket(self._ctx, zmq.ROUTER, Endpoint(self.endpoint, True),
                                       options=options)  # fmt: skip
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
        job = _Job(self._next_id, key, _encode(b"job", {
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
            }
        }

    # ------------------------------------------------------------- dispatch

    def _send(self, ident: bytes, kind: bytes, obj: dict) -> None:
        # A ROUTER never blocks: a message to a worker that is gone is dropped,
        # and the lease brings its job back.
        with contextlib.suppress(zmq.ZMQError):
            self._sock.send_multipart([ident, *_encode(kind, obj)], zmq.NOBLOCK)

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
        sock = self._sock
        while True:
            frames = sock.recv_multipart()
            ident = frames[0]
            try:
                kind, obj, body = _decode(frames, 1)
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
            raise _Malformed(f"unknown kind {kind[:20]!r}")

    def _hello(self, ident: bytes, worker: _Worker | None, obj: dict, now: float) -> None:
        if obj.get("v") != PROTOCOL_VERSION:
            raise _Malformed(f"protocol version {obj.get('v')!r}, not {PROTOCOL_VERSION}")
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
            outcome = _outcome(job.url, obj, body)
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


def _outcome(url: str, obj: dict, body: bytes | None) -> Fetched | FetchError:
    """A worker's result as the engine takes it."""
    error = obj.get("error")
    if error is not None:
        return FetchError(url, str(error["kind"]), str(error["message"]))
    links = obj.get("links")
    anchors = obj.get("anchors")
    return Fetched(
        status=int(obj["status"]),
        final_url=str(obj["final_url"]),
        content_type=str(obj["content_type"]),
        size=int(obj["size"]),
        truncated=bool(obj["truncated"]),
        elapsed=float(obj["elapsed"]),
        headers={str(k): str(v) for k, v in obj["headers"].items()},
        body=body if obj.get("body") else None,
        links=None if links is None else [(k, URL(k, encoded=True), f) for k, f in links],
        anchors=None if anchors is None else set(anchors),
    )


# ---------------------------------------------------------------------- worker


def default_name() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerStats:
    """What a worker did."""

    jobs: int = 0
    errors: int = 0  # jobs that got no HTTP response
    too_big: int = 0  # results over the message cap, sent as errors
    coordinators: int = 0  # welcomes (more than one: the coordinator restarted)

    def to_dict(self) -> dict:
        return {"jobs": self.jobs, "errors": self.errors, "too_big": self.too_big,
                "welcomes": self.coordinators}  # fmt: skip


class CrawlWorker:
    """A worker: fetches and parses what the coordinator at ``endpoint`` sends.

    ``run()`` returns why it ended: ``"done"`` (the crawl is over),
    ``"stopped"`` (``stop()``: in-flight jobs were finished first) or
    ``"gone"`` (nothing heard from the coordinator for ``idle_timeout``).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        concurrency: int = 16,
        name: str | None = None,
        idle_timeout: float = 60.0,
        max_message: int = MAX_MESSAGE,
        context: Any = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.endpoint = endpoint
        self.concurrency = concurrency
        self.name = name or default_name()
        self.idle_timeout = idle_timeout
        self.max_message = max_message
        self.stats = WorkerStats()
        # An own context by default: terminating it is what makes sure the
        # last messages ("done", "bye") leave before the process exits.
        self._own_ctx = context is None
        self._ctx = context or zmq.Context()
        self._sock: Any = None
        self._lock = Semaphore(1)
        self._pool = GreenPool(concurrency)
        self._busy: dict[int, Any] = {}  # job id -> its greenthread
        self._run_id: str | None = None
        self._session = secrets.token_hex(8)
        self._heard = 0.0  # when the coordinator was last heard from
        self._fetcher: LocalFetcher | None = None
        self._fetch_options: dict | None = None
        self._heartbeat = 1.0
        self._stopping = False
        self._drained = False
        self._wake = Event()

    def stop(self) -> None:
        """Take no more jobs, finish those in hand, then leave."""
        if not self._stopping:
            log.info("stopping: finishing the %d jobs in hand", len(self._busy))
        self._stopping = True
        self._poke()

    def _poke(self) -> None:
        if not self._wake.ready():
            self._wake.send(None)

    def run(self) -> str:
        """Work until the crawl is done, ``stop()``, or the coordinator is gone."""
        options = {zmq.MAXMSGSIZE: self.max_message, zmq.IMMEDIATE: 1}
        self._sock, _ = open_socket(self._ctx, zmq.DEALER, Endpoint(self.endpoint, False),
                                    options=options)  # fmt: skip
        receiver = spawn(self._receive)
        try:
            return self._loop(receiver)
        finally:
            kill(receiver)
            for gt in list(self._busy.values()):
                kill(gt)
            self._sock.close(linger=1000)
            if self._own_ctx:
                self._ctx.term()
            if self._fetcher is not None:
                self._fetcher.close()

    def _loop(self, receiver: Any) -> str:
        last_heard = time.monotonic()
        next_hello = 0.0
        next_beat = 0.0
        drain_asked = 0.0
        bye_sent = 0.0
        while True:
            if receiver.dead:  # "done": the crawl is over, or our "bye" was heard
                return "stopped" if self._stopping else "done"
            now = time.monotonic()
            if self._heard > last_heard:
                last_heard = self._heard
            if now - last_heard > self.idle_timeout:
                return "gone"
            if self._stopping:
                patience = DRAIN_BEATS * self._heartbeat
                if self._run_id is None or (bye_sent and now - bye_sent > patience):
                    return "stopped"
                if not drain_asked:
                    drain_asked = now
                    self._send_now(b"drain", {})
                elif not bye_sent and not self._busy and (
                        self._drained or now - drain_asked > patience):
                    # Leave once the coordinator has heard it (it answers "done"):
                    # closing first could lose the last results on the way.
                    bye_sent = now
                    self._send_now(b"bye", {})
            if self._run_id is None:
                if now >= next_hello:
                    sent = self._send_now(b"hello", {
                        "v": PROTOCOL_VERSION, "name": self.name, "session": self._session,
                        "credit": self.concurrency - len(self._busy),
                    })  # fmt: skip
                    next_hello = now + (HELLO_EVERY if sent else CONNECT_POLL)
                wait = max(0.0, next_hello - now)
            else:
                if now >= next_beat:
                    self._send_now(b"beat", {"jobs": sorted(self._busy)})
                    next_beat = now + self._heartbeat
                wait = max(0.0, next_beat - now)
            wait = min(wait, max(0.0, last_heard + self.idle_timeout - now) + 0.001)
            self._wake.wait(wait)
            if self._wake.ready():
                self._wake = Event()

    def _send_now(self, kind: bytes, obj: dict) -> bool:
        """Send unless it would wait (not connected, or the queue is full)."""
        if not self._lock.acquire(blocking=False):
            return False
        try:
            self._sock.send_multipart(_encode(kind, obj), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        finally:
            self._lock.release()

    def _receive(self) -> None:
        while True:
            frames = self._sock.recv_multipart()
            self._heard = time.monotonic()
            try:
                kind, obj, _ = _decode(frames)
                if self._handle(kind, obj):
                    return
            except Exception as exc:  # noqa: BLE001 - whatever a peer sends, work on
                log.warning("malformed message from the coordinator: %s: %s",
                            type(exc).__name__, exc)  # fmt: skip

    def _handle(self, kind: bytes, obj: dict) -> bool:
        """Act on one message; True when it ends the work ("done")."""
        if kind == b"welcome":
            self._welcome(obj)
        elif kind == b"job":
            self._job(obj)
        elif kind == b"reset":
            if self._run_id is not None:  # say hello again, as someone new
                self._run_id = None
                self._session = secrets.token_hex(8)
                self._poke()
        elif kind == b"drained":
            self._drained = True
            self._poke()
        elif kind == b"done":
            log.info("the crawl is done")
            self._send_now(b"bye", {})
            self._poke()
            return True
        # "beat" (and anything newer) only shows the coordinator is alive.
        return False

    def _welcome(self, obj: dict) -> None:
        if obj.get("v") != PROTOCOL_VERSION:
            log.warning("coordinator speaks protocol %r, not %d", obj.get("v"), PROTOCOL_VERSION)
            return
        if self._run_id is not None and obj.get("run") == self._run_id:
            return  # an answer to a repeated hello
        fetch = obj.get("fetch") or {}
        if fetch != self._fetch_options or self._fetcher is None:
            if self._fetcher is not None:
                self._fetcher.close()
            self._fetcher = LocalFetcher(_client(fetch, self.name))
            self._fetch_options = fetch
        self._heartbeat = float(obj.get("heartbeat", 1.0))
        self._run_id = str(obj.get("run"))
        self.stats.coordinators += 1
        log.info("joined the crawl at %s", self.endpoint)
        self._poke()

    def _job(self, obj: dict) -> None:
        job_id = obj.get("id")
        if self._fetcher is None or job_id in self._busy or not isinstance(job_id, int):
            return
        self._busy[job_id] = self._pool.spawn(self._work, obj)

    def _work(self, job: dict) -> None:
        job_id = job["id"]
        try:
            answer, body = self._do(job)
            reply = {"run": job.get("run"), "id": job_id,
                     "ask": 0 if self._stopping else 1, **answer}  # fmt: skip
            frames = _encode(b"result", reply, body)
            if sum(len(f) for f in frames) > self.max_message:
                self.stats.too_big += 1
                reply = {"run": reply["run"], "id": job_id, "ask": reply["ask"],
                         "error": {"kind": "other", "message":
                                   f"result over the {self.max_message} byte message cap"}}
                frames = _encode(b"result", reply)
            with self._lock:
                self._sock.send_multipart(frames)
        finally:
            self._busy.pop(job_id, None)
            self._poke()

    def _do(self, job: dict) -> tuple[dict, bytes | None]:
        """Fetch and parse ``job``: (the result's fields, the body frame or None)."""
        assert self._fetcher is not None
        self.stats.jobs += 1
        try:
            url = URL(str(job["url"]), encoded=True)
            got = self._fetcher.fetch(
                str(job.get("method", "GET")), url, follow_redirects=bool(job.get("follow")),
                max_body=job.get("max_body"), links=bool(job.get("links")),
                anchors=bool(job.get("anchors")), body=bool(job.get("body")),
            )  # fmt: skip
        except FetchError as exc:
            self.stats.errors += 1
            return {"error": {"kind": exc.kind, "message": exc.message}}, None
        except Exception as exc:  # one bad page must not end the worker
            log.exception("error while fetching %s", job.get("url"))
            self.stats.errors += 1
            return {"error": {"kind": "other",
                              "message": f"worker error: {type(exc).__name__}: {exc}"}}, None
        answer = {
            "status": got.status, "final_url": got.final_url, "content_type": got.content_type,
            "size": got.size, "truncated": got.truncated, "elapsed": round(got.elapsed, 6),
            "headers": dict(got.headers), "body": got.body is not None,
            "links": None if got.links is None else [[k, f] for k, _, f in got.links],
            "anchors": None if got.anchors is None else sorted(got.anchors),
        }  # fmt: skip
        return answer, got.body


def _client(fetch: dict, name: str) -> HttpClient:
    return crawl_client(
        timeout=float(fetch.get("timeout") or 30.0),
        max_body=int(fetch.get("max_body") or 10 * 2**20), per_host=int(fetch.get("per_host") or 8),
        user_agent=worker_agent(fetch.get("user_agent"), name),
    )  # fmt: skip
