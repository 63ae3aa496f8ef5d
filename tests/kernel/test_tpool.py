"""tpool: blocking calls in OS threads while greenthreads keep running."""

from __future__ import annotations

import threading
import time

import pytest
from helpers.green import settle

from nettools import Event, Timeout, sleep, spawn, tpool

pytestmark = pytest.mark.timeout(30)


def test_execute_returns_the_value_computed_in_another_thread():
    assert tpool.execute(lambda a, b=0: a + b, 1, b=2) == 3
    ident = tpool.execute(threading.get_ident)
    assert ident != threading.get_ident()


def test_execute_propagates_the_exception():
    def boom():
        raise KeyError("from thread")

    with pytest.raises(KeyError, match="from thread"):
        tpool.execute(boom)


def test_greenthreads_keep_running_while_execute_blocks_in_a_thread():
    ticks = 0
    stop = Event()

    def ticker():
        nonlocal ticks
        for _ in range(10_000):
            if stop.ready():
                return
            ticks += 1
            sleep(0.01)

    ticker_gt = spawn(ticker)
    settle()

    def blocking():
        before = ticks
        time.sleep(0.3)  # a real blocking call: only this OS thread sleeps
        return before, ticks

    try:
        before, after = tpool.execute(blocking)
    finally:
        stop.send()
        ticker_gt.wait()
    assert after > before  # the ticker ran while the thread blocked


def test_concurrent_execute_calls_run_in_parallel_threads():
    idents = set()
    # Only five calls running at the same time get through: run one after
    # another, the first would raise BrokenBarrierError at the timeout.
    all_in = threading.Barrier(5)

    def blocking():
        idents.add(threading.get_ident())
        all_in.wait(timeout=10)

    gts = [spawn(tpool.execute, blocking) for _ in range(5)]
    for gt in gts:
        gt.wait()
    assert len(idents) == 5


def test_a_timed_out_execute_drops_the_result_and_the_hub_forgets_the_job(hub):
    refs = hub.external_refs
    release = threading.Event()
    with pytest.raises(Timeout):
        with Timeout(0.02):
            tpool.execute(release.wait, 5)
    assert hub.external_refs == refs + 1  # the thread is still running the call
    release.set()
    for _ in range(500):  # bounded: until the thread reports back
        if hub.external_refs == refs:
            break
        sleep(0.01)
    assert hub.external_refs == refs


def test_execute_from_inside_the_hub_is_refused(hub):
    errors = []

    def cb():
        try:
            tpool.execute(lambda: None)
        except RuntimeError as e:
            errors.append(e)

    hub.run_callback(cb)
    settle()
    assert len(errors) == 1


def test_threadpool_size_is_taken_from_the_environment(run_script):
    proc = run_script(
        """
        import threading, time
        import nettools
        from nettools import tpool

        lock = threading.Lock()
        running = 0
        peak = 0
        idents = set()

        def job():
            global running, peak
            with lock:
                running += 1
                peak = max(peak, running)
                idents.add(threading.get_ident())
            time.sleep(0.05)
            with lock:
                running -= 1

        gts = [nettools.spawn(tpool.execute, job) for _ in range(8)]
        for gt in gts:
            gt.wait()
        print("PEAK", peak, "THREADS", len(idents))
        """,
        env={"NETTOOLS_THREADPOOL_SIZE": "2"},
    )
    assert proc.returncode == 0, proc.stderr
    assert "PEAK 2 THREADS 2" in proc.stdout


def test_an_object_called_through_the_pool_is_not_kept_alive():
    import gc
    import weakref

    class Thing:
        def ok(self) -> str:
            return "ok"

        def fail(self) -> None:
            raise KeyError("fail")

    for method in ("ok", "fail"):
        thing = Thing()
        ref = weakref.ref(thing)
        try:
            getattr(tpool.Proxy(thing), method)()
        except KeyError:
            pass
        del thing
        sleep(0.01)  # a turn of the hub after the one that delivered the result
        gc.collect()
        assert ref() is None, method
