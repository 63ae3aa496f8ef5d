"""Pools of DB-API connections for greenthreads (eventlet's ``db_pool``).

    import psycopg
    from nettools.dbpool import ConnectionPool

    pool = ConnectionPool(psycopg, max_size=8, conninfo="dbname=app host=/run/pg")
    conn = pool.get()            # waits while 8 are handed out
    try:
        cur = conn.cursor()      # runs in the thread pool: the hub keeps going
        cur.execute("select 1")
    finally:
        conn.close()             # back to the pool (rolled back first)

A database driver blocks the thread it is called in.  ``ConnectionPool``
(``TpooledConnectionPool``) therefore connects in the thread pool and hands
out connections wrapped in ``tpool.Proxy``: each call (and each call on the
cursors they make) runs in a worker thread while other greenthreads go on.
``RawConnectionPool`` hands out the driver's connections unwrapped, for
drivers that are green already (or calls cheap enough to block).

Connections idle longer than ``max_idle`` seconds, or older than ``max_age``,
are closed (a 0 for either: never reused); a connection that cannot be made
within ``connect_timeout`` seconds raises ``ConnectTimeout``.  ``put`` (or the
handed-out connection's ``close()``) runs ``cleanup`` on it first -- a
rollback by default -- and drops it if that fails.

``DatabaseConnector`` keeps one pool per (host, database) with per-host
credentials.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from .kernel import tpool
from .kernel.greenthread import GreenThread, spawn_after
from .kernel.itempool import Pool
from .kernel.timeout import Timeout

__all__ = [
    "ConnectTimeout",
    "cleanup_rollback",
    "BaseConnectionPool",
    "TpooledConnectionPool",
    "RawConnectionPool",
    "ConnectionPool",
    "PooledConnection",
    "DatabaseConnector",
]

_DEFAULT = object()


class ConnectTimeout(Exception):
    """A connection could not be made within the pool's ``connect_timeout``."""


def cleanup_rollback(conn: Any) -> None:
    """The default cleanup of a connection put back: roll back what it left open."""
    conn.rollback()


class _Entry:
    """An idle or handed-out connection, with its birth and last return."""

    __slots__ = ("conn", "created", "last_used", "fresh")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.created = self.last_used = time.monotonic()
        #: Just made, never put back: handed out whatever the limits say.
        self.fresh = True


class BaseConnectionPool(Pool):
    """A pool of connections made by ``db_module.connect(*args, **kwargs)``.

    Subclasses say how in ``connect``.  ``get()`` returns a
    ``PooledConnection``; ``put(conn)`` (or ``conn.close()``) returns it.
    """

    def __init__(
        self,
        db_module: Any,
        min_size: int = 0,
        max_size: int = 4,
        max_idle: float = 10,
        max_age: float = 30,
        connect_timeout: float | None = 5,
        cleanup: Callable[[Any], Any] = cleanup_rollback,
        *args: Any,
        **kwargs: Any,
    ) -> None:
        self.db_module = db_module
        self.max_idle = max_idle
        self.max_age = max_age
        self.connect_timeout = connect_timeout
        self.cleanup = cleanup
        self.connect_args = args
        self.connect_kwargs = kwargs
        self._expiry: GreenThread | None = None
        super().__init__(min_size, max_size, order_as_stack=True)

    # -------------------------------------------------------------- making

    def create(self) -> _Entry:
        return _Entry(
            self.connect(
                self.db_module, self.connect_timeout, *self.connect_args, **self.connect_kwargs
            )
        )

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, *args: Any, **kwargs: Any
    ) -> Any:
        """A new connection (override in a subclass)."""
        raise NotImplementedError

    # ---------------------------------------------------------- handing out

    def get(self) -> PooledConnection:
        """A connection: an idle one still fresh, a new one, or (at ``max_size``)
        the next one put back."""
        while True:
            entry = super().get()
            if entry.fresh or not self._expired(entry, time.monotonic()):
                return PooledConnection(entry, self)
            self._drop(entry)

    def put(self, conn: Any, cleanup: Any = _DEFAULT) -> None:
        """Take ``conn`` back (a ``PooledConnection``, which is then closed to
        its holder): cleaned up, kept for reuse, or closed if stale or broken."""
        if isinstance(conn, PooledConnection):
            entry = conn.detach()
            if entry is None:
                return  # already returned
        elif isinstance(conn, _Entry):
            entry = conn
        else:
            raise TypeError(f"put() takes a connection from this pool's get(), not {conn!r}")
        cleanup = self.cleanup if cleanup is _DEFAULT else cleanup
        if cleanup is not None:
            try:
                cleanup(entry.conn)
            except Exception:
                self._drop(entry)
                return
        now = time.monotonic()
        if self._expired(entry, now):
            self._drop(entry)
            return
        entry.last_used = now
        entry.fresh = False
        super().put(entry)
        self._schedule_expiry()

    @contextlib.contextmanager
    def item(self, cleanup: Any = _DEFAULT) -> Iterator[PooledConnection]:
        """``with pool.item() as conn:`` -- ``get``, and ``put`` back after."""
        conn = self.get()
        try:
            yield conn
        finally:
            self.put(conn, cleanup)

    def clear(self) -> None:
        """Close every idle connection (handed-out ones are closed as they come back
        only if stale)."""
        while self.free_items:
            self._drop(self.free_items.pop())

    # -------------------------------------------------------------- expiry

    def _expired(self, entry: _Entry, now: float) -> bool:
        return (
            self.max_idle <= 0
            or self.max_age <= 0
            or now - entry.last_used > self.max_idle
            or now - entry.created > self.max_age
        )

    def _drop(self, entry: _Entry) -> None:
        """Close ``entry``'s connection and free its place (for a waiter, if any)."""
        self.current_size -= 1
        try:
            entry.conn.close()
        except Exception:
            pass  # a broken connection is being dropped anyway
        self.resize(self.max_size)  # makes new ones for greenthreads waiting in get

    def _schedule_expiry(self) -> None:
        """Close idle connections when they go stale, even if the pool sits unused."""
        if self._expiry is not None or not self.free_items or self.max_idle <= 0:
            return
        soonest = min(
            min(e.last_used + self.max_idle, e.created + self.max_age) for e in self.free_items
        )
        delay = max(0.0, soonest - time.monotonic())
        self._expiry = spawn_after(delay, self._expire_idle)

    def _expire_idle(self) -> None:
        self._expiry = None
        now = time.monotonic()
        for entry in [e for e in self.free_items if self._expired(e, now)]:
            self.free_items.remove(entry)
            self._drop(entry)
        self._schedule_expiry()


class TpooledConnectionPool(BaseConnectionPool):
    """Connections made and used in the thread pool: ``tpool.Proxy`` objects
    whose cursors are proxied too.  (``ConnectionPool``.)"""

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, *args: Any, **kwargs: Any
    ) -> Any:
        with Timeout(connect_timeout, ConnectTimeout(f"no connection within {connect_timeout}s")):
            conn = tpool.execute(db_module.connect, *args, **kwargs)
        return tpool.Proxy(conn, autowrap_names=("cursor",))


class RawConnectionPool(BaseConnectionPool):
    """The driver's own connections, unwrapped (for drivers that do not block
    the hub)."""

    @classmethod
    def connect(
        cls, db_module: Any, connect_timeout: float | None, *args: Any, **kwargs: Any
    ) -> Any:
        with Timeout(connect_timeout, ConnectTimeout(f"no connection within {connect_timeout}s")):
            return db_module.connect(*args, **kwargs)


ConnectionPool = TpooledConnectionPool


class PooledConnection:
    """A connection handed out by a pool: the driver's connection's attributes,
    with ``close()`` returning it to the pool (once; later calls do nothing)."""

    __slots__ = ("_entry", "_pool")

    def __init__(self, entry: _Entry, pool: BaseConnectionPool) -> None:
        self._entry: _Entry | None = entry
        self._pool = pool

    def detach(self) -> _Entry | None:
        """The pool's record of the connection, taken from this handle (None if
        already returned); afterwards the handle is closed."""
        entry, self._entry = self._entry, None
        return entry

    @property
    def closed(self) -> bool:
        """True once returned to the pool."""
        return self._entry is None

    def close(self) -> None:
        """Return the connection to its pool."""
        if self._entry is not None:
            self._pool.put(self)

    def __getattr__(self, name: str) -> Any:
        if self._entry is None:
            raise AttributeError(f"{name!r}: this connection was returned to its pool")
        return getattr(self._entry.conn, name)

    def __enter__(self) -> Any:
        return self.__getattr__("__enter__")()

    def __exit__(self, *exc: Any) -> Any:
        return self.__getattr__("__exit__")(*exc)

    def __repr__(self) -> str:
        inner = "returned" if self._entry is None else repr(self._entry.conn)
        return f"<PooledConnection {inner}>"


class DatabaseConnector:
    """One pool per (host, database), with each host's credentials.

    ``credentials`` maps a host name (or ``"default"``) to keyword arguments of
    ``connect`` (user, password ...).  ``get(host, dbname)`` makes the pool on
    first use with ``host=host`` and the database under ``db_keyword`` (``db``,
    as MySQLdb and eventlet name it; ``dbname`` for psycopg).
    """

    def __init__(
        self,
        module: Any,
        credentials: dict[str, dict[str, Any]],
        conn_pool: type[BaseConnectionPool] | None = None,
        *args: Any,
        db_keyword: str = "db",
        **kwargs: Any,
    ) -> None:
        if module is None:
            raise ValueError("DatabaseConnector needs a database module")
        self.module = module
        self.credentials = credentials
        self.pool_class = conn_pool or ConnectionPool
        self.db_keyword = db_keyword
        self.args = args
        self.kwargs = kwargs
        self.pools: dict[tuple[str, str], BaseConnectionPool] = {}

    def credentials_for(self, host: str) -> dict[str, Any] | None:
        """``host``'s credentials, else the ``"default"`` ones, else None."""
        if host in self.credentials:
            return self.credentials[host]
        return self.credentials.get("default")

    def get(self, host: str, dbname: str) -> BaseConnectionPool:
        """The pool for ``dbname`` on ``host`` (made on first use)."""
        key = (host, dbname)
        pool = self.pools.get(key)
        if pool is None:
            kwargs = dict(self.kwargs)
            kwargs[self.db_keyword] = dbname
            kwargs["host"] = host
            kwargs.update(self.credentials_for(host) or {})
            pool = self.pools[key] = self.pool_class(self.module, *self.args, **kwargs)
        return pool
