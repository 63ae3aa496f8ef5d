"""nettools.green._thread and nettools.green.threading, standalone and monkey-patched."""

from __future__ import annotations

import gc
import queue as stdlib_queue
import sys
import threading as stdlib_threading
import time

import pytest
from helpers.green import settle
from helpers.isolated import run_isolated, write_module

import nettools
from nettools.green import _thread as gthread
from nettools.green import threading as gthreading

pytestmark = pytest.mark.timeout(60)


def _run_threads(target, n: int, *args) -> list:
    threads = [gthreading.Thread(target=target, args=args) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not any(t.is_alive() for t in threads)
    return threads


# --------------------------------------------------------------------- _thread


def test_start_new_thread_runs_a_greenthread_with_its_own_ident():
    seen = []
    done = nettools.Event()

    def work(tag: str, *, extra: int) -> None:
        seen.append((tag, extra, gthread.get_ident()))
        done.send()

    ident = gthread.start_new_thread(work, ("a",), {"extra": 1})
    done.wait(5)
    assert seen == [("a", 1, ident)]
    assert ident != gthread.get_ident()


def test_main_greenlet_keeps_the_real_thread_ident():
    assert gthread.get_ident() == stdlib_threading.get_ident()


def test_start_new_thread_checks_its_arguments():
    with pytest.raises(TypeError):
        gthread.start_new_thread(print, [1])
    with pytest.raises(TypeError):
        gthread.start_new_thread(print, (), [])


def test_count_and_stack_size():
    gate = nettools.Event()
    before = gthread._count()
    gthread.start_new_thread(gate.wait, ())
    settle()
    assert gthread._count() == before + 1
    gate.send()
    settle()
    assert gthread._count() == before
    old = gthread.stack_size(1 << 20)
    assert gthread.stack_size(old) == 1 << 20
    with pytest.raises(ValueError):
        gthread.stack_size(100)


def test_unhandled_error_goes_to_the_unraisable_hook(monkeypatch):
    reports = []
    monkeypatch.setattr(sys, "unraisablehook", reports.append)

    def boom() -> None:
        raise RuntimeError("boom in green thread")

    gthread.start_new_thread(boom, ())
    gthread.start_new_thread(sys.exit, ())  # SystemExit just ends the thread
    nettools.sleep(0.01)
    assert len(reports) == 1
    assert str(reports[0].exc_value) == "boom in green thread"
    assert reports[0].object is boom
    assert "thread started by" in reports[0].err_msg


def test_unhandled_error_printed_by_the_default_hook():
    out = run_isolated(
        """
        import sys
        import nettools
        from nettools.green import _thread
        sys.stderr = sys.stdout
        _thread.start_new_thread(lambda: 1 / 0, ())
        nettools.sleep(0.01)
        print("OK")
        """
    )
    assert "Exception ignored in thread started by" in out
    assert "ZeroDivisionError" in out


def test_lock_api_matches_the_real_lock():
    lock = gthread.allocate_lock()
    assert isinstance(lock, gthread.LockType)
    assert not lock.locked()
    assert lock.acquire() is True
    assert lock.locked()
    assert lock.acquire(False) is False
    assert lock.acquire(True, 0.05) is False
    assert lock.acquire(timeout=0) is False
    with pytest.raises(ValueError):
        lock.acquire(False, 1)
    with pytest.raises(ValueError):
        lock.acquire(True, -5)
    lock.release()
    with pytest.raises(RuntimeError):
        lock.release()
    with lock as got:
        assert got is True
        assert lock.locked()
    assert not lock.locked()
    assert "unlocked" in repr(lock)


def test_lock_parks_greenthreads_in_turn():
    lock = gthread.allocate_lock()
    order = []

    def worker(i: int) -> None:
        with lock:
            order.append(("in", i))
            nettools.sleep(0.01)
            order.append(("out", i))

    threads = [nettools.spawn(worker, i) for i in range(4)]
    for gt in threads:
        gt.wait()
    # nobody entered while another was inside
    for k in range(0, len(order), 2):
        assert order[k][0] == "in" and order[k + 1] == ("out", order[k][1])


def test_lock_is_handed_over_in_turn():
    # A holder that re-acquires at once must not starve a waiter.
    lock = gthread.allocate_lock()
    order = []

    def greedy() -> None:
        for i in range(5):
            with lock:
                order.append(("greedy", i))
                nettools.sleep(0.001)

    def polite() -> None:
        with lock:
            order.append(("polite", 0))

    g = nettools.spawn(greedy)
    nettools.sleep(0)
    p = nettools.spawn(polite)
    g.wait()
    p.wait()
    assert order.index(("polite", 0)) <= 2, order


def test_lock_under_mixed_contention():
    lock = gthread.allocate_lock()
    total = [0]

    def bump(n: int, pause) -> None:
        for i in range(n):
            with lock:
                value = total[0]
                if i % 10 == 0:
                    pause()
                total[0] = value + 1

    threads = [
        stdlib_threading.Thread(target=bump, args=(300, lambda: time.sleep(0.0005)))
        for _ in range(3)
    ]
    for t in threads:
        t.start()
    greens = [nettools.spawn(bump, 300, lambda: nettools.sleep(0.0005)) for _ in range(3)]
    for gt in greens:
        gt.wait()
    for t in threads:
        t.join(30)
    assert total[0] == 6 * 300


def test_lock_timeout_passes_on_its_wakeup():
    lock = gthread.allocate_lock()
    lock.acquire()
    results = []
    nettools.spawn(lambda: results.append(("short", lock.acquire(True, 0.01))))
    long = nettools.spawn(lambda: results.append(("long", lock.acquire(True, 5))))
    nettools.sleep(0.05)
    lock.release()
    long.wait()
    assert ("short", False) in results and ("long", True) in results


def test_lock_shared_with_a_real_thread():
    lock = gthread.allocate_lock()
    lock.acquire()
    ticks = []
    ticker = nettools.spawn(lambda: [(ticks.append(1), nettools.sleep(0.01)) for _ in range(5)])

    def real_thread() -> None:
        time.sleep(0.1)
        lock.release()

    stdlib_threading.Thread(target=real_thread).start()
    start = time.monotonic()
    assert lock.acquire(True, 5) is True  # woken from the other OS thread
    assert time.monotonic() - start < 4
    assert len(ticks) == 5  # the hub kept running meanwhile
    ticker.wait()

    # and the other way round: a real thread waits while a greenthread holds it
    got = []
    t = stdlib_threading.Thread(target=lambda: got.append(lock.acquire(True, 5)))
    t.start()
    nettools.sleep(0.05)
    lock.release()
    t.join(5)
    assert got == [True]


def test_lock_this_thread_holds_released_by_another_os_thread():
    # A lock used as a signal (importlib's module locks do so): a greenthread
    # takes it, then waits on it without a timeout until another OS thread
    # releases it.  That OS thread is told to only once we are parked, so the
    # wait must not be called a deadlock.
    lock = gthread.allocate_lock()
    lock.acquire()
    go = stdlib_threading.Event()
    t = stdlib_threading.Thread(target=lambda: (go.wait(10), lock.release()))
    t.start()
    nettools.spawn(go.set)  # runs once this greenlet has parked in acquire()
    assert lock.acquire() is True
    lock.release()
    t.join(10)


def test_patched_import_waits_for_a_real_thread_importing_the_same_module(tmp_path):
    # After monkey_patch importlib's module locks are green; a real thread in the
    # middle of importing a module holds one while this greenlet waits for it.
    write_module(
        tmp_path,
        "slowmod",
        """
        import __main__
        __main__.started.set()
        __main__.go.wait(10)
        VALUE = 42
        """,
    )
    run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        real_threading = nettools.patcher.original("threading")
        started, go = real_threading.Event(), real_threading.Event()
        t = real_threading.Thread(target=lambda: __import__("slowmod"))
        t.start()
        started.wait(10)
        nettools.spawn(go.set)  # runs once the import below has parked
        import slowmod
        t.join(10)
        assert slowmod.VALUE == 42
        print("OK")
        """,
        cwd=tmp_path,
    )


# ------------------------------------------------------------------ threading


def test_threads_are_greenthreads():
    idents = []

    def work() -> None:
        idents.append(gthreading.get_ident())
        gthreading.Event().wait(0.2)

    start = time.monotonic()
    _run_threads(work, 30)
    assert time.monotonic() - start < 3  # 30 x 0.2 s in sequence would be 6 s
    assert len(set(idents)) == 30


def test_current_thread_and_main_thread():
    assert gthreading.main_thread() is stdlib_threading.main_thread()
    assert gthreading.current_thread() is stdlib_threading.main_thread()
    names = []
    t = gthreading.Thread(target=lambda: names.append(gthreading.current_thread().name), name="w1")
    t.start()
    t.join()
    assert names == ["w1"]
    assert t.ident is not None and not t.is_alive()


def test_greenthreads_are_seen_as_eventlets_green_threads_and_do_not_leak():
    before = len(gthreading._active)
    names = [nettools.spawn(lambda: gthreading.current_thread().name).wait() for _ in range(20)]
    assert all(n.startswith("GreenThread-") for n in names) and len(set(names)) == 20
    gc.collect()
    assert len(gthreading._active) == before


def test_a_greenthreads_current_thread_behaves_as_a_thread():
    release = nettools.Event()
    seen = {}

    def body() -> None:
        t = gthreading.current_thread()
        seen["same"] = t is gthreading.current_thread()
        seen["ident"] = t.ident == gthreading.get_ident()
        t.name = "worker"
        seen["name"] = (t.name, t.getName(), t.get_name())
        seen["flags"] = (t.is_alive(), t.daemon, t.is_daemon())
        seen["thread"] = t
        release.wait()

    gt = nettools.spawn(body)
    nettools.sleep(0)
    t = seen["thread"]
    assert seen["same"] and seen["ident"]
    assert seen["name"] == ("worker", "worker", "worker")
    assert seen["flags"] == (True, True, True)
    t.join(0.01)  # times out: the greenthread still waits
    assert t.is_alive()
    release.send()
    t.join()
    assert not t.is_alive() and gt.dead


def test_a_thread_of_the_unpatched_module_sees_itself_once_patched():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import threading
        from nettools import patcher
        real_threading = patcher.original("threading")
        seen = []
        t = real_threading.Thread(target=lambda: seen.append(threading.current_thread()))
        t.start()
        t.join()
        assert seen == [t], seen
        assert len(threading._active) == 1 and len(real_threading._active) == 1
        assert threading.current_thread() is threading.main_thread()
        print("OK")
        """
    )
    assert out.strip().endswith("OK")


def test_primitives_in_greenthreads():
    cond = gthreading.Condition()
    sem = gthreading.BoundedSemaphore(2)
    rlock = gthreading.RLock()
    barrier = gthreading.Barrier(3)
    inside = []
    peak = []
    woken = []

    def worker() -> None:
        with rlock, rlock:  # reentrant
            pass
        with sem:
            inside.append(1)
            peak.append(len(inside))
            nettools.sleep(0.01)
            inside.pop()
        barrier.wait(5)
        with cond:
            cond.wait(5)
            woken.append(1)

    threads = [gthreading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    nettools.sleep(0.1)
    with cond:
        cond.notify_all()
    for t in threads:
        t.join(5)
    assert max(peak) == 2
    assert len(woken) == 3


def test_timer_event_and_local():
    fired = gthreading.Event()
    timer = gthreading.Timer(0.05, fired.set)
    timer.start()
    assert fired.wait(5)
    timer.join()
    cancelled = gthreading.Timer(10, fired.clear)
    cancelled.start()
    cancelled.cancel()
    cancelled.join(5)
    assert fired.is_set()

    data = gthreading.local()
    seen = []

    def worker(i: int) -> None:
        data.value = i
        nettools.sleep(0.01)
        seen.append(data.value == i)

    threads = [gthreading.Thread(target=worker, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert seen == [True] * 5


def test_exceptions_are_the_stdlib_ones():
    assert gthreading.BrokenBarrierError is stdlib_threading.BrokenBarrierError
    assert gthreading.ThreadError is stdlib_threading.ThreadError
    b = gthreading.Barrier(2)
    b.abort()
    with pytest.raises(stdlib_threading.BrokenBarrierError):
        b.wait()


def test_enumerate_active_count_and_excepthook(capsys):
    gate = gthreading.Event()
    t = gthreading.Thread(target=gate.wait, name="waiting-one")
    t.start()
    assert t in gthreading.enumerate()
    assert gthreading.active_count() >= 2
    gate.set()
    t.join()
    assert t not in gthreading.enumerate()

    bad = gthreading.Thread(target=lambda: 1 / 0, name="bad-one")
    bad.start()
    bad.join()
    assert "bad-one" in capsys.readouterr().err


def test_green_condition_with_a_real_thread():
    q = stdlib_queue.SimpleQueue()
    ev = gthreading.Event()
    t = stdlib_threading.Thread(target=lambda: (time.sleep(0.05), ev.set(), q.put("set")))
    t.start()
    assert ev.wait(5)
    assert q.get(timeout=5) == "set"
    t.join()


# ------------------------------------------------------------ monkey-patched


def test_patched_threads_are_green():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import threading, time
        idents = []
        def work():
            idents.append(threading.get_ident())
            time.sleep(0.2)
        start = time.monotonic()
        threads = [threading.Thread(target=work) for _ in range(50)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.monotonic() - start
        print("elapsed", round(elapsed, 2), "distinct", len(set(idents)))
        assert elapsed < 5, elapsed      # 50 x 0.2 s one after another would be 10 s
        assert len(set(idents)) == 50
        assert threading.get_ident() not in idents
        assert threading.current_thread() is threading.main_thread()
        print("OK")
        """
    )
    assert "distinct 50" in out


def test_interrupt_main_from_a_green_thread_interrupts_the_main_one():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import _thread, signal, threading

        t = threading.Thread(target=_thread.interrupt_main)
        try:
            t.start()
            t.join()
        except KeyboardInterrupt:
            print("main interrupted")
        t.join()
        print("thread alive:", t.is_alive())

        def handler(signum, frame):
            raise ZeroDivisionError(signum)
        signal.signal(signal.SIGTERM, handler)
        t = threading.Thread(target=_thread.interrupt_main, args=(signal.SIGTERM,))
        try:
            t.start()
            t.join()
        except ZeroDivisionError as exc:
            print("handler ran for the main thread:", exc.args[0] == signal.SIGTERM)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        t = threading.Thread(target=_thread.interrupt_main, args=(signal.SIGTERM,))
        t.start()
        t.join()
        print("OK")
        """
    )
    assert out.splitlines() == [
        "main interrupted", "thread alive: False", "handler ran for the main thread: True", "OK"
    ]


def test_patched_threading_keeps_identity_and_subclasses(tmp_path):
    write_module(
        tmp_path,
        "early_threads",
        """
        import threading

        class Worker(threading.Thread):
            def run(self):
                import time
                self.result = threading.get_ident()
                time.sleep(0.2)
        """,
    )
    run_isolated(
        """
        import threading
        main_before = threading.main_thread()
        import early_threads            # subclasses threading.Thread before patching
        import nettools
        nettools.monkey_patch()
        import time
        assert threading.main_thread() is main_before
        assert threading.current_thread() is main_before
        assert isinstance(main_before, threading.Thread)
        workers = [early_threads.Worker() for _ in range(10)]
        start = time.monotonic()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert time.monotonic() - start < 1.5
        assert len({w.result for w in workers}) == 10
        print("OK")
        """,
        cwd=tmp_path,
    )


def test_patched_primitives_and_no_dummy_leak():
    run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import gc, threading, time, _thread
        from nettools.green import _thread as gthread
        assert _thread.start_new_thread is gthread.start_new_thread
        assert isinstance(threading.Lock(), gthread.LockType)
        rl = threading.RLock()
        with rl, rl:
            pass
        before = len(threading._active)
        names = [nettools.spawn(lambda: threading.current_thread().name).wait() for _ in range(50)]
        gc.collect()
        assert len(threading._active) == before, (before, len(threading._active))
        ev = threading.Event()
        timer = threading.Timer(0.05, ev.set)
        timer.start()
        assert ev.wait(5)
        local = threading.local()
        seen = []
        def use_local(i):
            local.x = i
            time.sleep(0.01)
            seen.append(local.x == i)
        ts = [threading.Thread(target=use_local, args=(i,)) for i in range(5)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert seen == [True] * 5
        print("OK")
        """
    )


@pytest.mark.parametrize("forker", ["main", "thread"])
def test_patched_green_threads_survive_fork(forker):
    # Green threads live in the process's memory: in the child those of the
    # forking OS thread go on (threading must not call them stopped), with the
    # main thread; the parent's go on too.
    run_isolated(
        f"""
        import nettools
        nettools.monkey_patch()
        import os, threading, time

        done = []

        def background():
            time.sleep(0.1)
            assert threading.current_thread() in threading.enumerate()
            done.append("background")

        def forker():
            pid = os.fork()
            if pid == 0:
                assert threading.current_thread() in threading.enumerate()
                t.join(10)
                ok = done == ["background"] and not t.is_alive()
                ok = ok and threading.main_thread().ident == main_ident
                ok = ok and threading.main_thread() in threading.enumerate()
                os._exit(0 if ok else 3)
            _, status = os.waitpid(pid, 0)
            done.append(os.waitstatus_to_exitcode(status))

        main_ident = threading.get_ident()
        t = threading.Thread(target=background)
        t.start()
        if {forker!r} == "main":
            forker()
        else:
            f = threading.Thread(target=forker)
            f.start()
            f.join(10)
        t.join(10)
        assert sorted(done, key=str) == [0, "background"], done  # child exit code 0
        assert threading.active_count() == 1
        print("OK")
        """
    )


def test_patched_exit_waits_for_non_daemon_threads():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch()
        import threading, time
        def late():
            time.sleep(0.2)
            print("non-daemon finished", flush=True)
        def forever():
            time.sleep(60)
        threading.Thread(target=late).start()
        threading.Thread(target=forever, daemon=True).start()
        print("OK", flush=True)
        """,
        expect_ok=False,
    )
    assert out.strip().splitlines() == ["OK", "non-daemon finished"]


def test_patched_logging_locks_and_executor():
    run_isolated(
        """
        import logging
        handler = logging.StreamHandler()
        logging.getLogger().addHandler(handler)
        import nettools
        nettools.monkey_patch()
        import threading, time
        from concurrent.futures import ThreadPoolExecutor
        from nettools.green import _thread as gthread
        assert isinstance(handler.lock._block, gthread.LockType), handler.lock
        assert isinstance(logging._lock._block, gthread.LockType)
        start = time.monotonic()
        with ThreadPoolExecutor(10) as ex:
            results = list(ex.map(lambda i: (time.sleep(0.2), i)[1], range(10)))
        assert results == list(range(10))
        assert time.monotonic() - start < 1.5
        print("OK")
        """
    )


@pytest.mark.skipif(sys.version_info < (3, 13), reason="3.13 thread handles")
def test_start_joinable_thread():
    seen = []
    handle = gthread.start_joinable_thread(lambda: seen.append(gthread.get_ident()))
    handle.join(5)
    assert handle.is_done() and seen == [handle.ident]
