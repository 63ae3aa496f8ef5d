"""The hub: per-thread creation, ready queue, timers, cross-thread wake-ups,
fd waits, error handling, deadlock detection and fork."""

from __future__ import annotations

import errno
import logging
import os
import threading
import time

import pytest
from helpers.green import settle
from helpers.paths import TESTS

from nettools import DeadlockError, Event, IOClosed, Timeout, sleep, spawn, trampoline
from nettools.kernel import hub as hubmod
from nettools.kernel.fdwait import ConcurrentWaitError
from nettools.kernel.hub import get_hub, notify_close


def quiesce(hub) -> None:
    """Wait (bounded) until no timer is live, then check nothing else could wake the hub."""
    for _ in range(500):
        if hub.live_timers() == 0 and not hub.ready:
            break
        sleep(0.01)
    assert hub.live_timers() == 0, hub.timers
    assert hub.io_waiters == 0
    assert hub.external_refs == 0


# ------------------------------------------------------------------ creation


def test_hub_is_created_lazily_and_once_per_os_thread(hub):
    assert get_hub() is hub
    seen = {}

    def in_thread():
        seen["had_hub_before"] = hasattr(hubmod.thread_hub, "hub")
        h = get_hub()
        seen["hub"] = h
        seen["stable"] = get_hub() is h
        seen["spawn_works"] = spawn(lambda: 42).wait()
        h.close()

    t = threading.Thread(target=in_thread)
    t.start()
    t.join(10)
    assert not t.is_alive()
    assert seen["had_hub_before"] is False
    assert seen["hub"] is not hub
    assert seen["stable"] is True
    assert seen["spawn_works"] == 42


# -------------------------------------------------------------- ready queue


def test_ready_queue_runs_callbacks_in_order(hub):
    out = []
    for i in range(20):
        hub.run_callback(lambda i=i: out.append(i))
    sleep(0)
    assert out == list(range(20))


# ------------------------------------------------------------------- timers


@pytest.mark.timeout(10)
def test_timers_fire_in_deadline_order(hub):
    fired = []
    done = Event()
    hub.schedule(0.06, lambda: (fired.append(3), done.send()))
    hub.schedule(0.02, fired.append, 1)
    hub.schedule(0.04, fired.append, 2)
    hub.schedule(0.02, fired.append, "1b")  # same delay, scheduled later: fires later
    done.wait()
    assert fired == [1, "1b", 2, 3]


@pytest.mark.timeout(10)
def test_cancelled_timer_never_fires(hub):
    fired = []
    done = Event()
    t = hub.schedule(0.01, fired.append, "cancelled")
    assert t.pending
    t.cancel()
    assert not t.pending
    hub.schedule(0.05, done.send)
    done.wait()
    assert fired == []


@pytest.mark.timeout(10)
def test_timer_heap_compaction_keeps_firing_correct(hub):
    n = 1500
    live_before = hub.live_timers()
    fired = []
    done = Event()
    timers = [hub.schedule(0.05 + i * 1e-5, fired.append, i) for i in range(n)]
    hub.schedule(0.1, done.send)
    size_before = len(hub.timers)
    keep = list(range(0, n, 5))
    for i, t in enumerate(timers):
        if i % 5:
            t.cancel()  # 1200 cancelled: more than the compaction threshold
    assert len(hub.timers) < size_before  # compacted
    assert hub.live_timers() == live_before + len(keep) + 1
    done.wait()
    assert fired == keep
    assert hub.live_timers() == live_before


@pytest.mark.timeout(10)
def test_compaction_triggered_by_a_firing_timer_keeps_firing_correct(hub):
    n = 1500
    live_before = hub.live_timers()
    fired = []
    done = Event()
    timers = []

    def first():
        fired.append("first")
        for i, t in enumerate(timers):
            if i % 5:
                t.cancel()  # compacts the heap while the hub is popping from it

    hub.schedule(0.02, first)
    timers.extend(hub.schedule(0.02, fired.append, i) for i in range(n))
    hub.schedule(0.06, done.send)
    done.wait()
    assert fired == ["first", *range(0, n, 5)]
    assert hub.live_timers() == live_before


@pytest.mark.timeout(30)
def test_a_timer_set_after_a_compaction_in_a_greenthread_fires_in_time():
    # A greenthread compacts the heap, then sleeps briefly: the hub's poll that
    # follows in the same turn must be bounded by that sleep, not by a heap
    # that compaction has replaced (which would make the sleep last as long as
    # the far timers below, and the Timeout end it).  In a thread of its own:
    # its hub, with the cancelled timers left in its heap, goes with it.
    outcome = []

    def scenario():
        hub = get_hub()
        far = [hub.schedule(60 + i * 1e-3, print) for i in range(1200)]
        slept = Event()

        def compact_then_sleep():
            for t in far[:700]:
                t.cancel()  # not the heap's last leaf: marked, then compacted
            sleep(0.01)
            slept.send(True)

        try:
            with Timeout(5):
                spawn(compact_then_sleep)
                outcome.append(slept.wait())
        except Timeout:
            outcome.append("the sleep outlasted the timeout")

    thread = threading.Thread(target=scenario)
    thread.start()
    thread.join(20)
    assert outcome == [True]


def test_a_timer_cancelled_before_the_hub_ran_leaves_no_entry(hub):
    # A timeout set and cancelled between two hub turns is the newest leaf of
    # the heap: it goes at once instead of waiting for its deadline.
    size, cancelled = hub.get_timers_count(), hub.timers_canceled
    for _ in range(100):
        with Timeout(60):
            pass
        hub.schedule(60, print).cancel()
    assert (hub.get_timers_count(), hub.timers_canceled) == (size, cancelled)


def test_an_older_cancelled_timer_waits_for_compaction(hub):
    size = hub.get_timers_count()
    older = hub.schedule(60, print)
    newer = hub.schedule(61, print)
    older.cancel()  # not a leaf at the end of the list: only marked
    assert hub.get_timers_count() == size + 2
    assert hub.timers_canceled >= 1
    newer.cancel()
    assert hub.get_timers_count() == size + 1


def test_timer_heap_compacts_once_half_of_a_big_heap_is_cancelled(hub):
    # eventlet's rule: a heap above the threshold (1000 entries) never holds
    # more cancelled entries than live ones; below half, cancelled entries stay.
    live = [hub.schedule(60 + i, print) for i in range(500)]
    marked = [hub.schedule(30 + i * 1e-3, print) for i in range(700)]
    keep = hub.schedule(3600, print)  # the list's last leaf: the others are only marked
    compacted = False
    for t in marked:
        size, cancelled = hub.get_timers_count(), hub.timers_canceled
        t.cancel()
        if (cancelled + 1) * 2 < size:
            assert hub.get_timers_count() == size  # fewer than half cancelled: kept
        else:
            assert hub.get_timers_count() < size - 500  # compacted to the live ones
            assert hub.timers_canceled == 0
            compacted = True
            break
    assert compacted and hub.get_timers_count() >= 500
    for t in [*live, *marked, keep]:
        t.cancel()


# ----------------------------------------------------------- other threads


@pytest.mark.timeout(10)
def test_run_callback_threadsafe_from_another_thread_wakes_a_waiting_greenthread(hub):
    ev = Event()
    waiter = spawn(ev.wait)
    hub.ref()  # a thread will call back: waiting is not a deadlock

    def cb():
        hub.unref()
        ev.send(threading.get_ident())

    def from_thread():
        time.sleep(0.05)  # let the hub go to sleep in epoll first
        hub.run_callback_threadsafe(cb)

    t = threading.Thread(target=from_thread)
    t.start()
    try:
        # The callback ran in the hub's (this) thread, and woke the greenthread.
        assert waiter.wait() == threading.get_ident()
    finally:
        t.join(5)


# ------------------------------------------------------------------ fd waits


@pytest.mark.timeout(10)
def test_trampoline_read_waits_until_another_greenthread_writes(pipe):
    r, w = pipe
    written = []

    def writer():
        settle()
        written.append(True)
        os.write(w, b"x")

    spawn(writer)
    trampoline(r, read=True, timeout=5)
    assert written == [True]
    assert os.read(r, 10) == b"x"


def test_trampoline_read_returns_at_once_when_data_is_already_there(pipe):
    r, w = pipe
    os.write(w, b"x")
    others_ran = []
    spawn(others_ran.append, 1)
    trampoline(r, read=True)
    assert others_ran == []  # it did not even yield to the hub
    assert os.read(r, 10) == b"x"
    sleep(0)
    assert others_ran == [1]


@pytest.mark.timeout(10)
def test_trampoline_sees_unread_data_after_an_earlier_wait_consumed_the_edge(hub, pipe):
    r, w = pipe
    spawn(os.write, w, b"x")
    hub.wait_read(r, timeout=5)  # woken by the edge; we do not read
    trampoline(r, read=True, timeout=2)  # level semantics: the data is still there
    assert os.read(r, 10) == b"x"


@pytest.mark.timeout(10)
def test_trampoline_goes_back_to_waiting_after_a_spurious_wakeup(hub, pipe):
    r, w = pipe
    r2, w2 = os.pipe()
    os.set_blocking(r2, False)
    try:
        stolen = []

        def thief():
            hub.wait_read(r2, timeout=5)
            stolen.append(os.read(r, 10))  # drains r before its own waiter runs

        def reader():
            trampoline(r, read=True, timeout=5)
            return os.read(r, 10)

        thief_gt = spawn(thief)
        reader_gt = spawn(reader)
        settle()
        os.write(w2, b"go")  # both fds become ready in the same poll,
        os.write(w, b"x")  # r2 first: the thief empties r, then r's waiter is woken
        thief_gt.wait()
        assert stolen == [b"x"]
        settle()
        assert not reader_gt.dead  # the wake-up found nothing to read: still waiting
        os.write(w, b"y")
        assert reader_gt.wait() == b"y"
    finally:
        for fd in (r2, w2):
            notify_close(fd)
            os.close(fd)


@pytest.mark.timeout(10)
def test_trampoline_timeout_raises_timeout_not_before_the_deadline(pipe):
    r, _ = pipe
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        trampoline(r, read=True, timeout=0.05)
    elapsed = time.monotonic() - t0
    assert 0.05 - 1e-3 <= elapsed < 1.0


@pytest.mark.timeout(10)
def test_trampoline_timeout_raises_the_given_timeout_exc(pipe):
    r, _ = pipe
    exc = ConnectionError("read took too long")
    with pytest.raises(ConnectionError) as info:
        trampoline(r, read=True, timeout=0.01, timeout_exc=exc)
    assert info.value is exc


def test_trampoline_needs_exactly_one_direction(pipe):
    r, _ = pipe
    with pytest.raises(ValueError):
        trampoline(r)
    with pytest.raises(ValueError):
        trampoline(r, read=True, write=True)


@pytest.mark.timeout(10)
def test_wait_read_returns_once_the_fd_becomes_readable(hub, pipe):
    r, w = pipe
    written = []

    def writer():
        settle()
        written.append(True)
        os.write(w, b"y")

    spawn(writer)
    hub.wait_read(r, timeout=5)
    assert written == [True]
    assert os.read(r, 10) == b"y"


@pytest.mark.timeout(10)
def test_wait_read_timeout_raises_timeout(hub, pipe):
    r, _ = pipe
    with pytest.raises(Timeout):
        hub.wait_read(r, timeout=0.01)
    assert hub.io_waiters == 0


def fill_pipe(w: int) -> None:
    for _ in range(1000):
        try:
            os.write(w, b"x" * 65536)
        except BlockingIOError:
            return
    pytest.fail("could not fill the pipe")


@pytest.mark.timeout(10)
def test_wait_write_returns_once_a_full_pipe_has_room(hub, pipe):
    r, w = pipe
    fill_pipe(w)
    drained = []

    def reader():
        settle()
        for _ in range(1000):
            try:
                os.read(r, 1 << 20)
            except BlockingIOError:
                break
        drained.append(True)

    spawn(reader)
    hub.wait_write(w, timeout=5)
    assert drained == [True]
    assert os.write(w, b"z") == 1


@pytest.mark.timeout(10)
def test_wait_write_on_a_full_pipe_times_out_with_the_given_exception(hub, pipe):
    _, w = pipe
    fill_pipe(w)
    exc = ConnectionError("write took too long")
    with pytest.raises(ConnectionError) as info:
        hub.wait_write(w, timeout=0.01, timeout_exc=exc)
    assert info.value is exc
    assert hub.io_waiters == 0


@pytest.mark.timeout(10)
def test_notify_close_wakes_a_waiter_with_ioclosed(hub, pipe):
    r, _ = pipe
    gt = spawn(trampoline, r, read=True)
    settle()
    assert not gt.dead  # waiting on the fd
    notify_close(r)
    with pytest.raises(IOClosed) as info:
        gt.wait()
    assert info.value.errno == errno.EBADF
    assert hub.io_waiters == 0


@pytest.mark.timeout(10)
def test_second_simultaneous_reader_gets_concurrent_wait_error(hub, pipe):
    r, w = pipe
    first = spawn(hub.wait_read, r)
    settle()
    try:
        with pytest.raises(ConcurrentWaitError):
            hub.wait_read(r)
        with pytest.raises(ConcurrentWaitError):
            trampoline(r, read=True)
        # The first reader still owns the slot and is woken normally.
        os.write(w, b"x")
        assert first.wait() is None
    finally:
        if not first.dead:
            first.kill()


# ------------------------------------------------------------ error handling


def test_error_in_a_hub_callback_is_logged_and_the_hub_keeps_running(hub, caplog):
    after = []

    def bad():
        raise ValueError("boom in callback")

    with caplog.at_level(logging.ERROR, logger="nettools.hub"):
        hub.run_callback(bad)
        hub.run_callback(lambda: after.append(1))
        settle()  # the report is logged from a greenthread of its own, a turn later
    assert after == [1]
    records = [r for r in caplog.records if r.name == "nettools.hub"]
    assert len(records) == 1
    assert records[0].exc_info[0] is ValueError


@pytest.mark.timeout(10)
def test_error_in_a_timer_callback_is_logged_and_the_hub_keeps_running(hub, caplog):
    def bad():
        raise KeyError("boom in timer")

    with caplog.at_level(logging.ERROR, logger="nettools.hub"):
        hub.schedule(0, bad)
        settle()  # the timer fires; its report is logged from a greenthread a turn later
    records = [r for r in caplog.records if r.name == "nettools.hub"]
    assert len(records) == 1
    assert records[0].exc_info[0] is KeyError
    assert spawn(lambda: "alive").wait() == "alive"


# --------------------------------------------------------------- deadlocks


@pytest.mark.timeout(30)
def test_deadlock_in_main_greenlet_raises_deadlock_error_in_a_fresh_process(run_script):
    proc = run_script(
        """
        import nettools
        try:
            nettools.Event().wait()
        except nettools.DeadlockError as e:
            print("DEADLOCK:", e)
        ev = nettools.Event()
        gt = nettools.spawn(ev.wait)
        try:
            gt.wait()
        except nettools.DeadlockError:
            print("DEADLOCK 2")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "DEADLOCK: this wait can never end" in proc.stdout
    assert "DEADLOCK 2" in proc.stdout


@pytest.mark.timeout(20)
def test_deadlock_in_main_greenlet_raises_deadlock_error_in_process(hub):
    quiesce(hub)
    with pytest.raises(DeadlockError, match="can never end"):
        Event().wait()
    assert spawn(lambda: 7).wait() == 7  # the hub still works


@pytest.mark.timeout(20)
def test_deadlock_through_a_greenthread_that_waits_forever(hub):
    quiesce(hub)
    gt = spawn(Event().wait)
    try:
        with pytest.raises(DeadlockError):
            gt.wait()
    finally:
        gt.kill()
    assert gt.dead


@pytest.mark.timeout(20)
def test_cancelled_timers_do_not_delay_deadlock_detection(hub):
    quiesce(hub)
    hub.schedule(30, lambda: None).cancel()
    t0 = time.monotonic()
    with pytest.raises(DeadlockError):
        Event().wait()
    assert time.monotonic() - t0 < 15  # did not wait for the cancelled timer's deadline


def test_waiting_inside_the_hub_is_refused(hub):
    errors = []

    def blocking_callback():
        sleep(0)  # nothing to yield to: does nothing, as in eventlet
        try:
            sleep(0.01)
        except RuntimeError as e:
            errors.append(e)

    hub.run_callback(blocking_callback)
    settle()
    assert len(errors) == 1
    assert "inside the hub" in str(errors[0])


# -------------------------------------------------------------------- fork


@pytest.mark.timeout(30)
def test_child_keeps_its_hub_working_on_a_poller_of_its_own_after_fork(run_script):
    proc = run_script(
        """
        import os
        import nettools
        from nettools.kernel.hub import get_hub

        parent_hub = get_hub()
        assert nettools.spawn(lambda: 1).wait() == 1
        nettools.sleep(0.01)

        def pipe_roundtrip():
            r, w = os.pipe()
            os.set_blocking(r, False)
            nettools.spawn(os.write, w, b"x")
            nettools.trampoline(r, read=True, timeout=5)
            data = os.read(r, 1)
            nettools.kernel.hub.notify_close(r)
            nettools.kernel.hub.notify_close(w)
            os.close(r)
            os.close(w)
            return data

        pid = os.fork()
        if pid == 0:
            code = 3
            try:
                hub = get_hub()
                assert hub is parent_hub  # the same hub, its poller renewed
                assert nettools.spawn(lambda: 41 + 1).wait() == 42
                nettools.sleep(0.02)
                assert pipe_roundtrip() == b"x"
                code = 0
            except BaseException:
                import traceback
                traceback.print_exc()
            os._exit(code)
        _, status = os.waitpid(pid, 0)
        print("CHILD", os.waitstatus_to_exitcode(status))
        # The parent's hub is unaffected by the child closing its copy.
        nettools.sleep(0.01)
        assert get_hub() is parent_hub
        assert pipe_roundtrip() == b"x"
        print("PARENT OK")
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "CHILD 0" in proc.stdout, proc.stderr
    assert "PARENT OK" in proc.stdout


@pytest.mark.timeout(30)
def test_fork_from_a_greenthread_finishes_into_the_childs_hub(run_script):
    proc = run_script(
        """
        import os
        import nettools

        def fork_and_report():
            pid = os.fork()
            if pid == 0:
                # The child continues inside this greenthread; when it returns it
                # must land in the child's hub, which then runs the main greenlet.
                return "child"
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status)

        result = nettools.spawn(fork_and_report).wait()
        if result == "child":
            gts = [nettools.spawn(lambda i: (nettools.sleep(0.01), i)[1], i) for i in range(10)]
            os._exit(0 if sum(g.wait() for g in gts) == 45 else 3)
        print("CHILD", result)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "CHILD 0" in proc.stdout, proc.stderr


@pytest.mark.timeout(30)
def test_greenthreads_waiting_at_fork_go_on_in_the_child_and_the_parent(run_script):
    # One waits on a timer, one on a pipe; both survive fork in both processes,
    # each of which wakes its own (the pipe is shared: each writes its own byte).
    proc = run_script(
        """
        import os
        import nettools

        r, w = os.pipe()
        os.set_blocking(r, False)
        os.set_blocking(w, False)

        def read_one():
            nettools.trampoline(r, read=True, timeout=10)
            return os.read(r, 1)

        sleeper = nettools.spawn(lambda: (nettools.sleep(0.05), "slept")[1])
        reader = nettools.spawn(read_one)
        nettools.sleep(0)  # both are parked now
        pid = os.fork()
        if pid == 0:
            os.write(w, b"c")
            os._exit(0 if (reader.wait(), sleeper.wait()) == (b"c", "slept") else 3)
        _, status = os.waitpid(pid, 0)
        print("CHILD", os.waitstatus_to_exitcode(status))
        os.write(w, b"p")
        print("PARENT", reader.wait(), sleeper.wait())
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "CHILD 0" in proc.stdout, proc.stderr
    assert "PARENT b'p' slept" in proc.stdout, proc.stderr


def test_a_raising_turn_hook_is_logged_and_the_hub_keeps_running(hub, caplog):
    calls = []

    def bad_hook():
        calls.append(1)
        raise ValueError("hook failed")

    hub.turn_hooks.append(bad_hook)
    try:
        with caplog.at_level(logging.ERROR, logger="nettools.hub"):
            sleep(0.01)
            for _ in range(3):
                sleep(0)  # each wake-up from the ready batch needs a turn of its own
    finally:
        hub.turn_hooks.remove(bad_hook)
    assert len(calls) >= 2  # it ran on more than one turn: the hub survived
    assert "hook failed" in caplog.text


@pytest.mark.timeout(180)
def test_the_poll_fallback_passes_the_hub_and_socket_suites():
    # The loop used where epoll is missing, forced with NETTOOLS_HUB=poll.
    import subprocess
    import sys

    env = {**os.environ, "NETTOOLS_HUB": "poll"}
    which = subprocess.run(
        [sys.executable, "-c", "import nettools; print(type(nettools.get_hub().poller).__name__)"],
        capture_output=True, text=True, timeout=30, env=env,
    )
    assert which.stdout.strip() == "PollPoller", which.stderr  # the fallback really runs
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not poll_fallback",
         str(TESTS / "kernel" / "test_hub.py"), str(TESTS / "green" / "test_socket.py")],
        capture_output=True, text=True, timeout=170, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert " passed" in proc.stdout
