"""The conditional-GET cache of ``nettools feeds``: one SQLite file.

Per feed URL it keeps the validators (ETag, Last-Modified) and the body they
belong to, so a ``304 Not Modified`` can be answered from it, and whether the
feed is gone (410), so it is not asked again.  Calls are short and run in the
calling greenthread: SQLite never waits on the network.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

__all__ = ["CacheEntry", "FeedCache"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS feeds (
    url           TEXT PRIMARY KEY,
    etag          TEXT,
    last_modified TEXT,
    body          BLOB,
    content_type  TEXT,
    final_url     TEXT,
    gone          INTEGER NOT NULL DEFAULT 0,
    updated       REAL NOT NULL
)
"""


@dataclass
class CacheEntry:
    url: str
    etag: str | None
    last_modified: str | None
    body: bytes | None
    content_type: str | None
    final_url: str | None
    gone: bool
    updated: float

    def validators(self) -> dict[str, str]:
        """The request headers of a conditional GET for this entry."""
        headers: dict[str, str] = {}
        if self.body is None:
            return headers  # nothing to serve a 304 from
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


class FeedCache:
    """ETag/Last-Modified, last body and gone marks per feed URL, in ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        try:
            self.db = sqlite3.connect(path, isolation_level=None, timeout=5.0)
            self.db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise RuntimeError(f"cannot use the cache file {path}: {exc}") from None

    def get(self, url: str) -> CacheEntry | None:
        row = self._run(
            "SELECT url, etag, last_modified, body, content_type, final_url, gone, updated"
            " FROM feeds WHERE url = ?",
            (url,),
        ).fetchone()
        if row is None:
            return None
        return CacheEntry(*row[:6], gone=bool(row[6]), updated=row[7])

    def store(
        self,
        url: str,
        *,
        etag: str | None,
        last_modified: str | None,
        body: bytes,
        content_type: str | None,
        final_url: str | None,
    ) -> None:
        """Remember a 200 answer (only worth it with a validator)."""
        self._run(
            "INSERT OR REPLACE INTO feeds"
            " (url, etag, last_modified, body, content_type, final_url, gone, updated)"
            " VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
            (url, etag, last_modified, body, content_type, final_url, time.time()),
        )

    def touch(self, url: str) -> None:
        self._run("UPDATE feeds SET updated = ? WHERE url = ?", (time.time(), url))

    def mark_gone(self, url: str) -> None:
        """A 410: the feed is not to be asked for again."""
        self._run(
            "INSERT INTO feeds (url, gone, updated) VALUES (?, 1, ?)"
            " ON CONFLICT(url) DO UPDATE SET gone = 1, body = NULL, updated = excluded.updated",
            (url, time.time()),
        )

    def forget(self, url: str) -> None:
        self._run("DELETE FROM feeds WHERE url = ?", (url,))

    def _run(self, sql: str, args: tuple) -> sqlite3.Cursor:
        try:
            return self.db.execute(sql, args)
        except sqlite3.Error as exc:
            raise RuntimeError(f"cache file {self.path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> FeedCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
