"""A crawl that survives its process: every finished visit written to one SQLite file.

    journal = Journal("crawl.db", crawler.identity)
    result = Crawler([...], journal=journal).run()   # kill it, run it again: it goes on

The crawl in memory decides everything from what its visits found, in the
order they finished (``admission.py``).  So the journal keeps exactly that:
for each visit, in order, the link's outcome and what it led to (a page's
links, a redirect's target), each in a transaction of its own, committed
before the next visit is admitted; and each robots.txt and sitemap read.  A
crawl started again on the file replays those visits into a fresh
``Admission`` -- the same links, depths, referrers and limits as before --
and visits only what no record covers: the links in flight when it stopped
and those never reached.  A page is fetched twice only if it was in flight.

SQLite in WAL mode commits each record atomically, so a process killed
mid-write (kill -9, a power cut) leaves the journal as it was after the last
whole record.  ``synchronous=NORMAL`` skips the fsync per commit: a power cut
may lose the last records (their pages are fetched again), never the file.

``identity`` is what makes a crawl the same crawl (seeds, scope, limits...):
the file remembers it, and a different one is refused unless ``fresh``.
"""

from __future__ import annotations

import json
import sqlite3
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

from ....web.client import FetchError
from ..results import Link

__all__ = ["Journal", "JournalError", "FORMAT"]

#: The journal's format; a file of another format is refused.
FORMAT = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS crawl (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run      INTEGER PRIMARY KEY,
    started  REAL NOT NULL,
    elapsed  REAL,              -- NULL: the run did not end (killed)
    requests INTEGER,
    stopped  TEXT
);
CREATE TABLE IF NOT EXISTS visits (
    seq      INTEGER PRIMARY KEY,
    run      INTEGER NOT NULL,
    at       REAL NOT NULL,     -- seconds into its run
    url      TEXT NOT NULL,
    outcome  TEXT NOT NULL,     -- Link.outcome() as JSON
    targets  BLOB,              -- zlib(JSON [[key, fragment], ...]) of what it led to
    via      INTEGER NOT NULL,  -- 1: the target is where the page redirects
    requests INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS plain (
    url      TEXT PRIMARY KEY,
    run      INTEGER NOT NULL,
    status   INTEGER,           -- NULL: no answer (error says why)
    body     BLOB,
    error    TEXT               -- JSON [kind, message]
);
"""


class JournalError(ValueError):
    """A journal that cannot be used for this crawl (another crawl's, or not one)."""


class Journal:
    """The visits of one crawl in the SQLite file ``path``."""

    def __init__(
        self, path: str, identity: dict, *, fresh: bool = False, read_only: bool = False
    ) -> None:
        self.path = path
        try:
            if read_only:  # reading a crawl that may be running: WAL lets it write on
                self.db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True,
                                          isolation_level=None)  # fmt: skip
                self._claim(identity, create=False)
                self.run = 1 + self.db.execute("SELECT MAX(run) FROM runs").fetchone()[0]
            else:
                self.db = sqlite3.connect(path, isolation_level=None)
                self.db.execute("PRAGMA journal_mode=WAL")
                self.db.execute("PRAGMA synchronous=NORMAL")
                if fresh:
                    for table in ("crawl", "runs", "visits", "plain"):
                        self.db.execute(f"DROP TABLE IF EXISTS {table}")
                self.db.executescript(_SCHEMA)
                self._claim(identity)
                self.run = self.db.execute(
                    "INSERT INTO runs (started) VALUES (?)", (time.time(),)
                ).lastrowid
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot use {path} as a crawl journal: {exc}") from None
        self._start = time.monotonic()
        self.previous_requests, self.previous_elapsed = self._before()
        self.resumed = self.db.execute("SELECT 1 FROM visits LIMIT 1").fetchone() is not None

    @staticmethod
    def stored_identity(path: str) -> dict:
        """The identity of the crawl journaled in ``path`` (JournalError: none there)."""
        try:
            db = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
            try:
                row = db.execute("SELECT value FROM crawl WHERE key = 'identity'").fetchone()
            finally:
                db.close()
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"no crawl journal in {path}: {exc}") from None
        if row is None:
            raise JournalError(f"no crawl journal in {path}")
        return json.loads(row[0])

    def _claim(self, identity: dict, create: bool = True) -> None:
        rows = dict(self.db.execute("SELECT key, value FROM crawl"))
        mine = json.dumps(identity, sort_keys=True)
        if not rows and create:
            self.db.executemany("INSERT INTO crawl VALUES (?, ?)",
                                [("format", str(FORMAT)), ("identity", mine)])  # fmt: skip
            return
        if rows.get("format") != str(FORMAT):
            raise JournalError(f"{self.path} is a crawl journal of format "
                               f"{rows.get('format')}, not {FORMAT}: use --fresh")  # fmt: skip
        if rows.get("identity") != mine:
            theirs = json.loads(rows.get("identity") or "{}")
            differ = sorted(k for k in identity.keys() | theirs.keys()
                            if identity.get(k) != theirs.get(k))  # fmt: skip
            raise JournalError(f"{self.path} holds another crawl (its {', '.join(differ)} "
                               "differ): run the same command, or add --fresh to start over")

    def _before(self) -> tuple[int, float]:
        """Requests and seconds of the runs before this one (a killed run: up to
        its last record)."""
        requests, elapsed = 0, 0.0
        for run, ran, asked in self.db.execute(
            "SELECT run, elapsed, requests FROM runs WHERE run < ?", (self.run,)
        ).fetchall():
            if ran is None:
                ran, asked = self.db.execute(
                    "SELECT COALESCE(MAX(at), 0), COALESCE(SUM(requests), 0) FROM visits"
                    " WHERE run = ?", (run,)).fetchone()  # fmt: skip
                asked += self.db.execute("SELECT COUNT(*) FROM plain WHERE run = ?",
                                         (run,)).fetchone()[0]
            requests += asked or 0
            elapsed += ran or 0.0
        return requests, elapsed

    # ------------------------------------------------------------ replay

    def visits(self) -> Iterator[tuple[str, dict, list[list[str]], bool]]:
        """Every visit recorded, in order: ``(url, outcome, [[key, fragment], ...],
        via_redirect)``."""
        cursor = self.db.execute("SELECT url, outcome, targets, via FROM visits ORDER BY seq")
        for url, outcome, targets, via in cursor:
            found = json.loads(zlib.decompress(targets)) if targets is not None else []
            yield url, json.loads(outcome), found, bool(via)

    # ------------------------------------------------------------ writing

    def record(self, link: Link, targets: Any, via_redirect: bool) -> None:
        """``link`` was visited and led to ``targets`` ((key, url, fragment)s): one
        record, committed now."""
        packed = None
        if targets:
            packed = zlib.compress(json.dumps([[k, f] for k, _, f in targets]).encode(), 1)
        self.db.execute(
            "INSERT INTO visits (run, at, url, outcome, targets, via, requests)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.run, time.monotonic() - self._start, link.url, json.dumps(link.outcome()),
             packed, int(via_redirect), link.attempts),
        )  # fmt: skip

    def plain(self, url: str) -> tuple[int, bytes] | FetchError | None:
        """A robots.txt or sitemap read before (None: not read yet)."""
        row = self.db.execute("SELECT status, body, error FROM plain WHERE url = ?",
                              (url,)).fetchone()  # fmt: skip
        if row is None:
            return None
        if row[0] is None:
            return FetchError(url, *json.loads(row[2]))
        return row[0], row[1]

    def store_plain(self, url: str, answer: tuple[int, bytes] | FetchError) -> None:
        if isinstance(answer, FetchError):
            values = (url, self.run, None, None, json.dumps([answer.kind, answer.message]))
        else:
            values = (url, self.run, answer[0], answer[1], None)
        self.db.execute("INSERT OR REPLACE INTO plain VALUES (?, ?, ?, ?, ?)", values)

    def finish(self, requests: int, stopped: str | None) -> None:
        """This run is over (``requests``: its own)."""
        self.db.execute("UPDATE runs SET elapsed = ?, requests = ?, stopped = ? WHERE run = ?",
                        (time.monotonic() - self._start, requests, stopped, self.run))

    def close(self) -> None:
        self.db.close()
