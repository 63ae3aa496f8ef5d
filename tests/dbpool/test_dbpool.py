"""nettools.dbpool (eventlet's db_pool) against real databases: sqlite3, and a
PostgreSQL cluster of its own through psycopg."""

from __future__ import annotations

import sqlite3
import threading

import pytest
from helpers.postgres import PostgresCluster, postgres_bindir

from nettools import dbpool
from nettools.kernel.greenthread import sleep, spawn
from nettools.kernel.sync import Event

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def postgres():
    if postgres_bindir() is None:
        pytest.skip("PostgreSQL is not installed here (make system-deps installs it)")
    with PostgresCluster.temporary() as cluster:
        yield cluster


def _sqlite_pool(tmp_path, cls=dbpool.ConnectionPool, **kw):
    # Tpooled connections are used from the pool's worker threads, in turn.
    return cls(sqlite3, database=str(tmp_path / "db.sqlite"), check_same_thread=False, **kw)


def test_sqlite_tpooled_connection_round_trip(tmp_path):
    pool = _sqlite_pool(tmp_path, max_size=2)
    conn = pool.get()
    cur = conn.cursor()
    cur.execute("create table t (x integer)")
    cur.execute("insert into t values (41), (1)")
    conn.commit()
    cur.execute("select sum(x) from t")
    assert cur.fetchone() == (42,)
    conn.close()
    assert conn.closed
    conn.close()  # a second close does nothing
    assert pool.free() == 2 and len(pool.free_items) == 1
    # The same connection comes back out.
    with pool.item() as again:
        assert again.execute("select count(*) from t").fetchone() == (2,)
    pool.clear()
    assert pool.current_size == 0


def test_put_rolls_back_what_was_left_open(tmp_path):
    pool = _sqlite_pool(tmp_path, max_size=1)
    with pool.item() as conn:
        conn.execute("create table t (x integer)")
        conn.commit()
        conn.execute("insert into t values (1)")  # never committed
    with pool.item() as conn:
        assert conn.execute("select count(*) from t").fetchone() == (0,)


def test_a_failing_cleanup_drops_the_connection(tmp_path):
    pool = _sqlite_pool(tmp_path, max_size=1)
    conn = pool.get()
    raw = conn._entry.conn

    def broken(c):
        raise sqlite3.OperationalError("gone")

    pool.put(conn, cleanup=broken)
    assert pool.current_size == 0 and not pool.free_items
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("select 1")  # it was closed


def test_max_age_zero_never_reuses(tmp_path):
    pool = _sqlite_pool(tmp_path, max_size=1, max_age=0)
    first = pool.get()
    first_raw = first._entry.conn
    first.close()
    second = pool.get()
    assert second._entry.conn is not first_raw
    second.close()


def test_idle_connections_are_closed_after_max_idle(tmp_path):
    pool = _sqlite_pool(tmp_path, max_size=2, max_idle=0.05, max_age=60)
    conn = pool.get()
    raw = conn._entry.conn
    conn.close()
    assert len(pool.free_items) == 1
    for _ in range(200):
        if not pool.free_items:
            break
        sleep(0.01)
    assert not pool.free_items and pool.current_size == 0
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("select 1")


def test_get_waits_at_max_size_and_gets_the_one_put_back(tmp_path):
    pool = _sqlite_pool(tmp_path, cls=dbpool.RawConnectionPool, max_size=1)
    held = pool.get()
    got = []
    waiter = spawn(lambda: got.append(pool.get()))
    sleep(0)
    assert pool.waiting() == 1 and not got
    raw = held._entry.conn
    held.close()
    waiter.wait()
    assert got[0]._entry.conn is raw
    got[0].close()


def test_connect_timeout_raises_connect_timeout():
    release = threading.Event()

    class SlowDriver:
        @staticmethod
        def connect(**kw):
            release.wait(10)
            raise OSError("never mind")

    pool = dbpool.ConnectionPool(SlowDriver, connect_timeout=0.05)
    try:
        with pytest.raises(dbpool.ConnectTimeout):
            pool.get()
    finally:
        release.set()
    assert pool.current_size == 0


def test_postgres_queries_run_in_threads_while_the_hub_goes_on(postgres):
    pool = dbpool.ConnectionPool(psycopg, max_size=2, conninfo=postgres.conninfo())
    ticks = []
    stop = Event()

    def ticker():
        while not stop.ready():
            ticks.append(1)
            sleep(0.01)

    t = spawn(ticker)
    try:
        with pool.item() as conn:
            cur = conn.cursor()
            cur.execute("select pg_sleep(0.3), 7")
            assert cur.fetchone()[1] == 7
    finally:
        stop.send()
        t.wait()
    # The hub ran the ticker while the query blocked a worker thread.
    assert len(ticks) >= 3
    pool.clear()


def test_postgres_pool_serves_concurrent_greenthreads_and_rolls_back(postgres):
    pool = dbpool.ConnectionPool(psycopg, max_size=2, conninfo=postgres.conninfo())
    with pool.item() as conn:
        conn.execute("create table if not exists hits (n int)")
        conn.commit()
    backends = set()

    def work(i):
        with pool.item() as conn:
            cur = conn.cursor()
            cur.execute("insert into hits values (%s)", (i,))
            cur.execute("select pg_backend_pid()")
            backends.add(cur.fetchone()[0])
            if i % 2:
                conn.commit()  # the even ones are rolled back by the pool

    workers = [spawn(work, i) for i in range(6)]
    for w in workers:
        w.wait()
    assert len(backends) <= 2  # never more connections than max_size
    with pool.item() as conn:
        row = conn.execute("select array_agg(n order by n) from hits").fetchone()
        assert row == ([1, 3, 5],)
    pool.clear()


def test_database_connector_keeps_a_pool_per_database(postgres):
    with psycopg.connect(postgres.conninfo(), autocommit=True) as admin:
        admin.execute("create database other")
    creds = {"default": {"user": "postgres"}}
    connector = dbpool.DatabaseConnector(psycopg, creds, db_keyword="dbname")
    host = str(postgres.sockdir)
    pool = connector.get(host, "other")
    assert connector.get(host, "other") is pool
    assert connector.get(host, "postgres") is not pool
    assert connector.credentials_for("elsewhere") == {"user": "postgres"}
    with pool.item() as conn:
        assert conn.execute("select current_database()").fetchone() == ("other",)
    for p in connector.pools.values():
        p.clear()

