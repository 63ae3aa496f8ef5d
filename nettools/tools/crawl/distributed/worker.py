"""A worker of the distributed crawl: fetches and parses what the coordinator sends.

    CrawlWorker("tcp://coordinator.example:5557", concurrency=16).run()

It says hello until welcomed (the welcome carries the crawl's HttpClient
settings), takes up to ``concurrency`` jobs at a time, does each with a
``LocalFetcher`` and sends the result back (``wire.py``); heartbeats keep its
jobs leased to it.  To stop, it asks the coordinator to drain it, finishes the
jobs in hand and says bye.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import Any

from yarl import URL

from ....green import zmq
from ....green.zmq.endpoints import Endpoint, EndpointError, open_socket, parse_endpoint
from ....kernel.greenthread import kill, spawn
from ....kernel.pool import GreenPool
from ....kernel.sync import Event, Semaphore
from ....web.client import DEFAULT_USER_AGENT, FetchError, HttpClient
from ...plumbing.service import stop_on_signals
from ...plumbing.sizecap import SizeCap
from ..fetcher import LocalFetcher, crawl_client
from .wire import MAX_MESSAGE, PROTOCOL_VERSION, decode, encode, error_fields, result_fields

__all__ = ["CrawlWorker", "WorkerStats", "connect_endpoint", "default_name", "worker_agent"]

log = logging.getLogger("nettools.crawl")

#: Seconds between a worker's hellos while it waits to be welcomed.
HELLO_EVERY = 1.0
#: Seconds between attempts while the worker is not connected yet.
CONNECT_POLL = 0.05
#: Longest wait, in heartbeats, for the coordinator's "drained" when stopping.
DRAIN_BEATS = 4


def connect_endpoint(text: str) -> str:
    """The URL of the endpoint a worker connects to, from ``URL`` or
    ``connect:URL``; ``EndpointError`` if it is malformed or says bind."""
    ep = parse_endpoint(text)
    if ep.bind and text.strip().startswith("bind:"):
        raise EndpointError(f"a worker connects: {text!r} says bind")
    return ep.url


def worker_agent(user_agent: str | None, name: str) -> str:
    """The User-Agent a worker sends: the crawl's, naming the worker (so a site
    operator -- or a test -- can tell which machine asked)."""
    return f"{user_agent or DEFAULT_USER_AGENT} crawl-worker/{name}"


def default_name() -> str:
    """HOSTNAME-PID: a worker's name unless it is given one."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass
class WorkerStats:
    """What a worker did."""

    jobs: int = 0
    errors: int = 0  # jobs that got no HTTP response
    too_big: int = 0  # results over the message cap, sent as errors
    oversized: int = 0  # messages received over the message cap: dropped
    coordinators: int = 0  # welcomes (more than one: the coordinator restarted)

    def to_dict(self) -> dict:
        return {"jobs": self.jobs, "errors": self.errors, "too_big": self.too_big,
                "oversized": self.oversized, "welcomes": self.coordinators}  # fmt: skip


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
        self._cap = SizeCap(max_message, self.stats, log, "crawl worker")
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

    def stop_on_signals(self) -> contextlib.AbstractContextManager[None]:
        """A context in which SIGINT and SIGTERM ``stop()`` the worker."""
        return stop_on_signals(self.stop)

    def _poke(self) -> None:
        if not self._wake.ready():
            self._wake.send(None)

    def run(self) -> str:
        """Work until the crawl is done, ``stop()``, or the coordinator is gone."""
        # The size cap is ours, not libzmq's ZMQ_MAXMSGSIZE (see sizecap).
        options = {zmq.IMMEDIATE: 1}
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
            self._sock.send_multipart(encode(kind, obj), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False
        finally:
            self._lock.release()

    def _receive(self) -> None:
        while True:
            frames = self._cap.recv(self._sock)
            self._heard = time.monotonic()
            try:
                kind, obj, _ = decode(frames)
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
            frames = encode(b"result", reply, body)
            if sum(len(f) for f in frames) > self.max_message:
                self.stats.too_big += 1
                reply = {"run": reply["run"], "id": job_id, "ask": reply["ask"],
                         **error_fields("other",
                                        f"result over the {self.max_message} byte message cap")}
                frames = encode(b"result", reply)
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
            return error_fields(exc.kind, exc.message), None
        except Exception as exc:  # one bad page must not end the worker
            log.exception("error while fetching %s", job.get("url"))
            self.stats.errors += 1
            return error_fields("other", f"worker error: {type(exc).__name__}: {exc}"), None
        return result_fields(got)


def _client(fetch: dict, name: str) -> HttpClient:
    return crawl_client(
        timeout=float(fetch.get("timeout") or 30.0),
        max_body=int(fetch.get("max_body") or 10 * 2**20), per_host=int(fetch.get("per_host") or 8),
        user_agent=worker_agent(fetch.get("user_agent"), name),
    )  # fmt: skip
