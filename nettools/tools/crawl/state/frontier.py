"""The shared crawl state in Redis, as calls: ``SharedFrontier``.

    frontier = SharedFrontier.open(parse_state("redis://127.0.0.1:6379/0"))
    frontier.create(identity, settings)      # or find the crawl already there
    frontier.seed([(url, kind, host), ...], last=True)
    jobs, wait = frontier.lease(token, 16, lease=30.0)

Every change is one script of ``scripts.py`` (atomic in Redis); reads for
the report scan the hashes in pages.  Times go to Redis in milliseconds of
this machine's wall clock: workers' clocks need to agree only to well within
a lease.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from ....kernel.sync import Semaphore
from ....web.client import FetchError
from . import StateSpec
from .greenredis import green_redis
from .scripts import MAX_ISSUES, PRELUDE, SCRIPTS

__all__ = ["SharedFrontier", "Job", "FORMAT", "StateMismatch", "StateUnavailable", "pack",
           "fragment_of", "finishing"]

#: The layout of the keys (``scripts.py``); a crawl of another layout is refused.
FORMAT = 1
#: Commands to Redis under way at once from one process.
CONNECTIONS = 16
#: Keys read per round trip when scanning for the report.
SCAN_COUNT = 1000
#: robots.txt bodies kept in Redis, at most (Google reads 500 KiB).
ROBOTS_MAX = 512 * 1024


class StateMismatch(ValueError):
    """The state holds another crawl (or another layout)."""


class StateUnavailable(RuntimeError):
    """Redis cannot be reached (or answered with an error)."""


@dataclass(frozen=True)
class Job:
    """A leased link: what a worker visits."""

    id: str
    kind: str  # "p" page or "e" external
    url: str
    host: str
    delay: float  # the host's spacing, seconds
    opened: bool  # the host has answered before
    anchors: bool  # a #fragment link names it


def _ms(seconds: float | None = None) -> int:
    return int((time.time() if seconds is None else seconds) * 1000)


class SharedFrontier:
    """One crawl's state under ``prefix`` in the Redis that ``client`` talks to."""

    def __init__(self, client: Any, prefix: str, where: str = "") -> None:
        self.redis = client
        self.prefix = prefix
        self.where = where or "redis"
        self.ops = 0  # scripts and commands sent, for the figures
        self._busy = Semaphore(CONNECTIONS)
        self._sources = {name: PRELUDE + body for name, body in SCRIPTS.items()}
        self._shas = {name: hashlib.sha1(text.encode()).hexdigest()
                      for name, text in self._sources.items()}  # fmt: skip
        from redis import RedisError  # installed: the client above is redis-py's
        from redis.exceptions import NoScriptError

        self._errors = (RedisError, OSError)
        self._noscript = NoScriptError

    @classmethod
    def open(cls, spec: StateSpec, timeout: float = 30.0) -> SharedFrontier:
        client = green_redis(host=spec.host, port=spec.port, path=spec.path, db=spec.db,
                             username=spec.username, password=spec.password, timeout=timeout,
                             max_connections=CONNECTIONS)  # fmt: skip
        return cls(client, spec.prefix, spec.text)

    def key(self, name: str) -> str:
        return f"{self.prefix}:{name}"

    def _run(self, name: str, *args: Any) -> Any:
        return self._run_many(name, [args])[0]

    def _run_many(self, name: str, calls: list[tuple]) -> list[Any]:
        """Script ``name`` once per argument tuple of ``calls``, in one round trip
        (pipelined; each call is atomic, not the batch)."""
        sha = self._shas[name]
        with self._busy, self._unavailable():
            self.ops += 1
            out = self._pipeline(sha, calls)
            undone = [i for i, r in enumerate(out) if isinstance(r, self._noscript)]
            if undone:  # a Redis restarted without its script cache: load it, do those again
                self.redis.execute_command("SCRIPT", "LOAD", self._sources[name])
                redone = self._pipeline(sha, [calls[i] for i in undone])
                for i, result in zip(undone, redone, strict=True):
                    out[i] = result
            for result in out:
                if isinstance(result, Exception):
                    raise result
            return out

    def _pipeline(self, sha: str, calls: list[tuple]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for args in calls:
            pipe.execute_command("EVALSHA", sha, 0, self.prefix, _ms(), *args)
        return pipe.execute(raise_on_error=False)

    def _call(self, command: str, *args: Any) -> Any:
        with self._busy, self._unavailable():
            self.ops += 1
            return self.redis.execute_command(command, *args)

    @contextlib.contextmanager
    def _unavailable(self) -> Iterator[None]:
        try:
            yield
        except self._errors as exc:
            raise StateUnavailable(f"the crawl state at {self.where}: {exc}") from None

    # ------------------------------------------------------------- the crawl

    def create(self, identity: dict, settings: dict) -> None:
        """Make this crawl's state, or check that the one there is this crawl.
        ``settings`` (how to fetch: per_host, delay, timeout, retries, lease...)
        are the first process's; every process then fetches by them."""
        mine = json.dumps(identity, sort_keys=True)
        depth, max_pages = identity["depth"], identity["max_pages"]
        have = self._run("create", mine, time.time(), -1 if depth is None else depth,
                         -1 if max_pages is None else max_pages, settings["per_host"],
                         _ms(settings["delay"]), int(identity["check_fragments"]), FORMAT,
                         json.dumps(settings))  # fmt: skip
        self._same(identity, have.decode() if isinstance(have, bytes) else have)
        fmt = self.meta().get("format")
        if fmt != str(FORMAT):
            raise StateMismatch(f"{self.where}: the crawl under {self.prefix!r} has the "
                                f"layout {fmt}, not {FORMAT}: add --fresh")  # fmt: skip

    def expect(self, identity: dict) -> None:
        """Check, without changing anything, that the crawl under the prefix is
        the crawl of ``identity`` (StateMismatch: another one, or none)."""
        held = self.identity()
        if held is None:
            raise StateMismatch(f"no crawl in {self.where} under {self.prefix!r}")
        self._same(identity, json.dumps(held[0], sort_keys=True))

    def _same(self, identity: dict, have: str) -> None:
        if have != json.dumps(identity, sort_keys=True):
            theirs = json.loads(have)
            differ = sorted(k for k in identity.keys() | theirs.keys()
                            if identity.get(k) != theirs.get(k))  # fmt: skip
            raise StateMismatch(f"{self.where} holds another crawl under {self.prefix!r} (its "
                                f"{', '.join(differ)} differ): run the same command, add "
                                "--fresh to start over, or use another prefix")  # fmt: skip

    def identity(self) -> tuple[dict, dict] | None:
        """The identity and settings of the crawl under the prefix, if there is one."""
        identity, settings = self._call("HMGET", self.key("meta"), "identity", "settings")
        if identity is None:
            return None
        return json.loads(identity), json.loads(settings or "{}")

    def wipe(self) -> int:
        """Delete every key of this crawl (--fresh); how many."""
        gone = 0
        batch: list[bytes] = []
        with self._unavailable():
            names = list(self.redis.scan_iter(match=f"{_glob(self.prefix)}:*", count=SCAN_COUNT))
        for name in names:
            batch.append(name)
            if len(batch) >= SCAN_COUNT:
                gone += self._call("UNLINK", *batch)
                batch = []
        if batch:
            gone += self._call("UNLINK", *batch)
        return gone

    def seed(self, links: Iterable[tuple[str, str, str]], *, last: bool) -> int:
        """Admit start URLs ``(url, kind, host)``; ``last``: the seeding is over."""
        blob = pack((url, kind, host, "") for url, kind, host in links)
        return int(self._run("seed", "1" if last else "0", blob))

    def meta(self) -> dict[str, str]:
        raw = self._call("HGETALL", self.key("meta"))
        return {k.decode(): v.decode() for k, v in raw.items()}

    def stop(self, reason: str) -> str:
        """Stop the crawl for every worker: no more leases (the first reason
        stays); "" lifts the stop."""
        got = self._run("stop", reason)
        return got.decode() if isinstance(got, bytes) else str(got)

    # ---------------------------------------------------------------- leases

    def lease(self, token: str, most: int, lease: float) -> tuple[list[Job], float | None]:
        """Up to ``most`` links to visit, and the seconds until another host is
        ready (None: no link queued)."""
        out = self._run("lease", token, most, _ms(lease))
        wait = int(out[-1])
        return _jobs(out[:-1]), (None if wait < 0 else wait / 1000)

    def finish(
        self, token: str, job: Job, outcome: dict, *, answered: bool, requests: int,
        worker: str, targets: list[tuple[str, str, str, str]], via: bool, more: int = 0,
        lease: float = 30.0,
    ) -> tuple[bool, list[Job]]:
        """The visit of ``job`` is over: whether it counted (not if its lease
        had run out: the link went to another worker, whose answer counts), and
        up to ``more`` links leased for ``lease`` seconds in the same round trip."""
        return self.finish_many([finishing(token, job, outcome, answered=answered,
                                           requests=requests, worker=worker, targets=targets,
                                           via=via, more=more, lease=lease)])[0]  # fmt: skip

    def finish_many(self, finished: list[tuple]) -> list[tuple[bool, list[Job]]]:
        """Several ``finishing(...)`` at once, in one round trip: each one's answer."""
        return [(out[0] == b"ok", _jobs(out[1:])) for out in self._run_many("finish", finished)]

    def release(self, token: str, job: Job) -> None:
        """Give ``job`` back unvisited, to the head of its host's queue."""
        self._run("release", token, job.id)

    def renew(self, token: str, jobs: Iterable[Job], lease: float) -> None:
        ids = [job.id for job in jobs]
        if ids:
            self._run("renew", token, _ms(lease), *ids)

    def reap(self) -> int:
        """Put the links of leases that ran out back in their queues."""
        return int(self._run("reap", MAX_ISSUES))

    # ---------------------------------------------------------------- hosts

    def hold(self, host: str, seconds: float) -> None:
        self._run("hold", host, _ms(time.time() + seconds))

    def respace(self, host: str) -> tuple[float, tuple[str, str] | None]:
        """Reserve the start of one more request to ``host``: (seconds to wait,
        the host's settled failure or None)."""
        wait, dead = self._run("respace", host)
        failure = None
        if dead:
            kind, _, message = dead.decode().partition("\t")
            failure = (kind, message)
        return max(0, int(wait)) / 1000, failure

    def set_delay(self, host: str, seconds: float) -> None:
        self._run("delay", host, _ms(seconds))

    def settle(self, host: str, kind: str, message: str) -> int:
        return int(self._run("settle", host, kind, message))

    # -------------------------------------------------------- robots.txt etc.

    def plain(self, url: str) -> tuple[int, bytes] | FetchError | None:
        """A robots.txt (or sitemap) some worker read, or None."""
        raw = self._call("HGET", self.key("robots"), url)
        if raw is None:
            return None
        head, _, body = raw.partition(b"\n")
        if head.startswith(b"-\t"):
            _, kind, message = raw.decode("utf-8", "replace").split("\t", 2)
            return FetchError(url, kind, message)
        return int(head), body

    def store_plain(self, url: str, answer: tuple[int, bytes] | FetchError) -> None:
        if isinstance(answer, FetchError):
            value = f"-\t{answer.kind}\t{answer.message}".encode()
        else:
            value = str(answer[0]).encode() + b"\n" + answer[1][:ROBOTS_MAX]
        self._call("HSETNX", self.key("robots"), url, value)

    # ------------------------------------------------------------- reading

    def scan(self, name: str) -> Iterator[tuple[bytes, bytes]]:
        """Every field of the hash ``name``, in pages."""
        with self._unavailable():
            yield from self.redis.hscan_iter(self.key(name), count=SCAN_COUNT)

    def scan_buckets(self, name: str) -> Iterator[tuple[bytes, bytes]]:
        """Every field of the bucketed hashes ``name:B`` (see ``scripts.py``)."""
        with self._unavailable():
            keys = list(self.redis.scan_iter(match=f"{_glob(self.key(name))}:*",
                                             count=SCAN_COUNT))  # fmt: skip
        for start in range(0, len(keys), SCAN_COUNT):
            with self._unavailable():
                pipe = self.redis.pipeline(transaction=False)
                for key in keys[start:start + SCAN_COUNT]:
                    pipe.hgetall(key)
                for fields in pipe.execute():
                    yield from fields.items()

    def members(self, name: str) -> int:
        return int(self._call("SCARD", self.key(name)))

    def count(self, name: str) -> int:
        return int(self._call("HLEN", self.key(name)))

    def close(self) -> None:
        self.redis.connection_pool.disconnect()


def finishing(
    token: str, job: Job, outcome: dict, *, answered: bool, requests: int, worker: str,
    targets: list[tuple[str, str, str, str]], via: bool, more: int, lease: float,
) -> tuple:
    """The arguments of one visit's end, for ``SharedFrontier.finish_many``."""
    return (token, job.id, job.url, job.host, json.dumps(outcome), int(answered), requests,
            worker, int(via), more, _ms(lease), pack(targets))  # fmt: skip


def pack(links: Iterable[tuple[str, str, str, str]]) -> str:
    """Links ``(url, kind, host, fragment)`` as one argument: a line each, "KIND\\tHOST
    \\tFRAGMENT\\tURL" (a normalised URL has no tab nor newline; a fragment's
    are escaped, with "%", as ``fragment_of`` undoes)."""
    lines = []
    for url, kind, host, fragment in links:
        if fragment and ("%" in fragment or "\t" in fragment or "\n" in fragment):
            fragment = fragment.replace("%", "%25").replace("\t", "%09").replace("\n", "%0A")
        lines.append(f"{kind}\t{host}\t{fragment}\t{url}")
    return "\n".join(lines)


def fragment_of(packed: str) -> str:
    """A fragment as ``pack`` sent it."""
    return unquote(packed) if "%" in packed else packed


def _jobs(flat: list) -> list[Job]:
    """The jobs of a lease's answer (sevens)."""
    jobs = []
    for i in range(0, len(flat), 7):
        jid, kind, url, host, delay, opened, anchors = flat[i:i + 7]
        jobs.append(Job(jid.decode(), kind.decode(), url.decode(), host.decode(),
                        int(delay) / 1000, opened in (b"1", 1), bool(int(anchors))))
    return jobs


def _glob(text: str) -> str:
    """``text`` with the characters SCAN MATCH treats specially escaped."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)
