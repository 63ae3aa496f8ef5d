"""Greenthreads: spawn variants, wait, kill, link, states, worker reuse, and
the guarantee that a greenthread is never woken by a stale wake-up."""

from __future__ import annotations

import contextvars
import logging
import time
from weakref import WeakKeyDictionary

import pytest
from helpers.green import settle

from nettools import (
    Event,
    GreenletExit,
    GreenThread,
    Semaphore,
    Timeout,
    getcurrent,
    kill,
    local,
    sleep,
    spawn,
    spawn_after,
    spawn_after_local,
    spawn_n,
)
from nettools.kernel import greenthread as gtmod
from nettools.kernel.greenthread import current_greenthread

# ------------------------------------------------------------------- spawn


def test_spawn_then_wait_returns_the_result():
    gt = spawn(lambda a, b=0: a + b, 40, b=2)
    assert isinstance(gt, GreenThread)
    assert gt.wait() == 42
    assert gt.wait() == 42  # again, from the stored result


def test_exception_in_spawned_call_is_raised_by_wait():
    def boom():
        raise ValueError("boom")

    gt = spawn(boom)
    with pytest.raises(ValueError, match="boom"):
        gt.wait()
    with pytest.raises(ValueError, match="boom"):
        gt.wait()


def test_exception_in_spawn_is_not_logged(caplog):
    def boom():
        raise ValueError("kept for wait")

    with caplog.at_level(logging.DEBUG, logger="nettools.greenthread"):
        gt = spawn(boom)
        settle()
    assert gt.dead
    assert not [r for r in caplog.records if r.name == "nettools.greenthread"]
    with pytest.raises(ValueError):
        gt.wait()


def test_exception_in_spawn_n_is_logged_and_not_raised(caplog):
    def boom():
        raise ValueError("fire and forget")

    with caplog.at_level(logging.ERROR, logger="nettools.greenthread"):
        gt = spawn_n(boom)
        settle()  # nothing is raised here
    assert gt.dead
    records = [r for r in caplog.records if r.name == "nettools.greenthread"]
    assert len(records) == 1
    assert records[0].exc_info[0] is ValueError


def test_spawn_n_runs_the_call():
    out = []
    spawn_n(out.append, "ran")
    settle()
    assert out == ["ran"]


@pytest.mark.timeout(10)
def test_spawn_after_runs_after_the_delay():
    t0 = time.monotonic()
    gt = spawn_after(0.05, time.monotonic)
    started = gt.wait()
    assert 0.05 - 1e-3 <= started - t0 < 1.0


@pytest.mark.timeout(10)
def test_spawn_after_cancelled_before_start_never_runs(hub):
    ran = []
    live = hub.live_timers()
    gt = spawn_after(0.02, ran.append, 1)
    gt.cancel()
    assert hub.live_timers() == live  # its start timer was dropped
    sleep(0.06)  # well past its start time
    assert ran == []
    assert gt.dead
    with pytest.raises(GreenletExit):
        gt.wait()


def test_cancel_does_not_kill_a_started_greenthread():
    ev = Event()
    gt = spawn(ev.wait)
    settle()
    gt.cancel()
    settle()
    assert not gt.dead
    ev.send("still here")
    assert gt.wait() == "still here"


@pytest.mark.timeout(10)
def test_spawn_after_local_runs_while_the_spawner_lives():
    def spawner():
        return spawn_after_local(0.02, lambda: "ran").wait()

    assert spawn(spawner).wait() == "ran"


@pytest.mark.timeout(10)
def test_spawn_after_local_does_not_run_if_the_spawner_died():
    ran = []
    inner = spawn(lambda: spawn_after_local(0.02, ran.append, 1)).wait()
    sleep(0.08)  # past its start time
    assert ran == []
    assert not inner.dead and not inner  # never started


# ------------------------------------------------------------------- sleep


def test_sleep_zero_lets_other_ready_greenthreads_run():
    out = []
    spawn(out.append, "a")
    spawn(out.append, "b")
    assert out == []
    sleep(0)
    assert out == ["a", "b"]


@pytest.mark.timeout(10)
def test_sleep_waits_at_least_the_given_time():
    t0 = time.monotonic()
    sleep(0.03)
    assert 0.03 - 1e-3 <= time.monotonic() - t0 < 1.0


# -------------------------------------------------------------------- kill


def test_kill_runs_the_victims_finally_and_wait_raises_greenlet_exit():
    cleaned = []

    def victim():
        try:
            Event().wait()
        finally:
            cleaned.append(True)

    gt = spawn(victim)
    settle()
    gt.kill()
    assert cleaned == [True]  # handled before kill() returned
    assert gt.dead
    with pytest.raises(GreenletExit):
        gt.wait()


def test_kill_with_a_custom_exception_instance():
    seen = []

    def victim():
        try:
            Event().wait()
        except ValueError as e:
            seen.append(e)
            raise

    gt = spawn(victim)
    settle()
    exc = ValueError("custom")
    gt.kill(exc)
    assert seen == [exc]
    with pytest.raises(ValueError) as info:
        gt.wait()
    assert info.value is exc


def test_kill_with_an_exception_class_and_argument():
    gt = spawn(Event().wait)
    settle()
    kill(gt, KeyError, "k")
    with pytest.raises(KeyError, match="k"):
        gt.wait()


def test_killing_a_never_started_greenthread_means_it_never_runs():
    ran = []
    gt = spawn(ran.append, 1)
    gt.kill()
    assert gt.dead
    settle()
    assert ran == []
    with pytest.raises(GreenletExit):
        gt.wait()


def test_kill_wakes_greenthreads_waiting_for_the_victim():
    victim = spawn(Event().wait)
    waiter = spawn(victim.wait)
    settle()
    victim.kill()
    with pytest.raises(GreenletExit):
        waiter.wait()


def test_kill_of_a_finished_greenthread_is_harmless():
    gt = spawn(lambda: 5)
    assert gt.wait() == 5
    gt.kill()
    assert gt.wait() == 5


def test_a_greenthread_cannot_wait_for_itself():
    def self_wait():
        with pytest.raises(RuntimeError):
            current_greenthread().wait()
        return "ok"

    assert spawn(self_wait).wait() == "ok"


# -------------------------------------------------------------------- link


def test_link_is_called_with_the_greenthread_and_curried_args_on_completion():
    calls = []
    ev = Event()
    gt = spawn(ev.wait)
    gt.link(lambda g, *a, **kw: calls.append((g, a, kw)), 1, 2, key="v")
    settle()
    assert calls == []
    ev.send("done")
    assert gt.wait() == "done"
    assert calls == [(gt, (1, 2), {"key": "v"})]


def test_link_on_a_finished_greenthread_is_called_at_once():
    gt = spawn(lambda: 1)
    gt.wait()
    calls = []
    gt.link(lambda g, x: calls.append((g, x)), "now")
    assert calls == [(gt, "now")]


def test_link_is_called_when_the_greenthread_is_killed():
    calls = []
    gt = spawn(Event().wait)
    gt.link(calls.append)
    settle()
    gt.kill()
    assert calls == [gt]


def test_unlink_removes_the_link():
    calls = []
    fn = lambda g, x: calls.append(x)
    gt = spawn(lambda: None)
    gt.link(fn, "a")
    gt.link(fn, "b")
    assert gt.unlink(fn, "a") is True
    assert gt.unlink(fn, "a") is False  # already removed
    assert gt.unlink(fn, "zzz") is False  # never linked
    gt.wait()
    assert calls == ["b"]


def test_links_with_and_without_curried_args_mix_and_unlink():
    calls = []
    plain = calls.append
    gt = spawn(Event().wait)
    gt.link(plain)
    assert gt.unlink(plain) is True  # the only link, kept without its arguments
    assert gt.unlink(plain) is False
    gt.link(plain)
    gt.link(lambda g, x: calls.append(x), "curried")
    gt.link(plain)
    assert gt.unlink(plain) is True  # the first of the two
    settle()
    gt.kill()
    assert calls == ["curried", gt]


def test_error_in_a_link_is_logged(caplog):
    def bad_link(g):
        raise RuntimeError("bad link")

    gt = spawn(lambda: "result")
    gt.link(bad_link)
    with caplog.at_level(logging.ERROR, logger="nettools.greenthread"):
        assert gt.wait() == "result"
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in caplog.records)


# ------------------------------------------------------------------ states


def test_dead_and_bool_through_the_life_of_a_greenthread():
    ev = Event()
    gt = spawn(ev.wait)
    assert not gt.dead and not gt  # pending
    settle()
    assert not gt.dead and gt  # running (waiting)
    ev.send(None)
    gt.wait()
    assert gt.dead and not gt  # finished


def test_current_greenthread_inside_a_spawned_call_is_its_greenthread():
    gt = spawn(current_greenthread)
    assert gt.wait() is gt
    assert current_greenthread() is None  # the test's main greenlet is no greenthread


def test_greenthread_property_greenlet_is_the_running_greenlet():
    gt = spawn(lambda: current_greenthread().greenlet is getcurrent())
    assert gt.wait() is True
    assert gt.greenlet is None  # no longer running


# ------------------------------------------------------------- worker reuse


class _CountingWorker(gtmod._Worker):
    """The worker greenlet class, counting the workers made."""

    __slots__ = ()
    created = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _CountingWorker.created += 1


def test_calls_that_keep_nothing_reuse_worker_greenlets(monkeypatch):
    monkeypatch.setattr(gtmod, "_Worker", _CountingWorker)
    _CountingWorker.created = 0
    for _ in range(20):
        spawn(lambda: None).wait()
    assert _CountingWorker.created < 20


def test_a_call_that_keeps_a_traceback_still_reuses_worker_greenlets(monkeypatch):
    # Werkzeug keeps the routing error (with its traceback) on each request:
    # the frames it holds are no reference to the worker.
    monkeypatch.setattr(gtmod, "_Worker", _CountingWorker)
    _CountingWorker.created = 0
    kept = []

    def call():
        try:
            raise LookupError("no route")
        except LookupError as exc:
            kept.append(exc)

    for _ in range(20):
        spawn(call).wait()
    assert all(exc.__traceback__ is not None for exc in kept)
    assert _CountingWorker.created <= 1  # (an idle worker from before may be taken first)


def test_a_call_that_stores_getcurrent_never_shares_its_greenlet():
    kept = []
    for _ in range(20):
        spawn(lambda: kept.append(getcurrent())).wait()
    assert len({id(g) for g in kept}) == 20  # all alive, so ids are identities


def test_a_call_that_stores_getcurrent_weakly_never_shares_its_greenlet():
    seen = WeakKeyDictionary()
    reused = []

    def call():
        g = getcurrent()
        reused.append(g in seen)
        seen[g] = True

    for _ in range(20):
        spawn(call).wait()
    assert reused == [False] * 20


def test_a_call_that_stores_current_greenthread_greenlet_never_shares_it():
    kept = []
    for _ in range(10):
        spawn(lambda: kept.append(current_greenthread().greenlet)).wait()
    assert len({id(g) for g in kept}) == 10


def test_attributes_set_on_getcurrent_are_not_seen_by_a_later_call():
    def setter():
        getcurrent().user_data = "secret"

    def reader():
        return getattr(getcurrent(), "user_data", None)

    for _ in range(10):
        spawn(setter).wait()
        assert spawn(reader).wait() is None


def test_greenthread_local_values_are_not_seen_by_a_later_call():
    loc = local()

    def setter():
        loc.x = "secret"

    def reader():
        return getattr(loc, "x", None)

    for _ in range(10):
        spawn(setter).wait()
        assert spawn(reader).wait() is None


def test_contextvars_set_in_one_call_are_not_visible_in_a_later_call():
    var = contextvars.ContextVar("var", default="unset")

    def setter():
        var.set("leaked")

    for _ in range(10):
        spawn(setter).wait()
        assert spawn(var.get).wait() == "unset"


def test_contextvars_of_the_spawner_are_not_inherited():
    var = contextvars.ContextVar("var2", default="unset")
    token = var.set("main")
    try:
        assert spawn(var.get).wait() == "unset"
    finally:
        var.reset(token)


# ------------------------------------------------------- stale wake-ups


def _assert_stays_blocked(gt, ev2):
    settle()
    assert not gt.dead, gt.wait()  # would re-raise the stray error
    ev2.send("sentinel")
    assert gt.wait() == "sentinel"


@pytest.mark.timeout(10)
def test_timeout_in_sleep0_leaves_no_stale_wakeup():
    ev2, parked = Event(), Event()

    def victim():
        try:
            with Timeout(0):  # fires in the same hub turn our sleep(0) wake-up is queued
                sleep(0)
        except Timeout:
            pass
        else:
            return "timeout did not fire"
        parked.send()
        return ev2.wait()

    gt = spawn(victim)
    parked.wait()
    _assert_stays_blocked(gt, ev2)


def victim_queued(hub):
    """A greenthread's wake-up from sleep(0) is queued: to run, or to run after a poll."""
    return bool(hub.ready or hub.yielded or hub.polling_yielded)


@pytest.mark.timeout(10)
def test_kill_in_sleep0_leaves_no_stale_wakeup(hub):
    ev2 = Event()

    def victim():
        try:
            for _ in range(100_000):
                sleep(0)
        except GreenletExit:
            return ev2.wait()
        return "not killed"

    gt = spawn(victim)
    sleep(0)  # the victim starts, and its own sleep(0) queues its wake-up ...
    assert victim_queued(hub)  # ... which is still queued
    gt.kill()
    _assert_stays_blocked(gt, ev2)


@pytest.mark.timeout(10)
def test_timeout_after_event_sent_but_before_wakeup_leaves_no_stale_wakeup(hub):
    ev1, ev2, parked = Event(), Event(), Event()

    def victim():
        hub.schedule(0, ev1.send, "stale")  # fires just before our timeout
        try:
            with Timeout(0):
                ev1.wait()
        except Timeout:
            pass
        else:
            return "timeout did not fire"
        parked.send()
        return ev2.wait()

    gt = spawn(victim)
    parked.wait()
    assert ev1.ready()
    _assert_stays_blocked(gt, ev2)


def test_kill_after_event_sent_but_before_wakeup_leaves_no_stale_wakeup():
    ev1, ev2 = Event(), Event()

    def victim():
        try:
            ev1.wait()
        except GreenletExit:
            return ev2.wait()
        return "not killed"

    gt = spawn(victim)
    settle()
    ev1.send("stale")  # its wake-up is queued ...
    gt.kill()  # ... but the victim leaves first
    _assert_stays_blocked(gt, ev2)


@pytest.mark.timeout(10)
def test_timeout_in_sleep_leaves_no_stale_wakeup():
    ev2, parked = Event(), Event()

    def victim():
        try:
            with Timeout(0.01):
                sleep(0.02)  # its timer is due right after the timeout
        except Timeout:
            pass
        parked.send()
        return ev2.wait()

    gt = spawn(victim)
    parked.wait()
    sleep(0.05)  # past the sleep's deadline
    _assert_stays_blocked(gt, ev2)


@pytest.mark.timeout(10)
def test_killer_timed_out_while_the_victim_cleans_up_leaves_no_stale_wakeup():
    ev2, parked = Event(), Event()

    def victim():
        try:
            Event().wait()
        finally:
            sleep(0.05)  # slow cleanup: the killer is not resumed yet

    victim_gt = spawn(victim)

    def killer():
        try:
            with Timeout(0):  # due while the killer's own wake-up is still queued
                victim_gt.kill()
        except Timeout:
            pass
        else:
            return "timeout did not fire"
        parked.send()
        return ev2.wait()

    killer_gt = spawn(killer)
    parked.wait()
    _assert_stays_blocked(killer_gt, ev2)
    with pytest.raises(GreenletExit):
        victim_gt.wait()


def test_kill_after_semaphore_release_but_before_wakeup_loses_no_unit():
    sem = Semaphore(0)
    gt = spawn(sem.acquire)
    settle()
    sem.release()  # hand-over queued ...
    gt.kill()  # ... but the waiter leaves first
    settle()
    assert sem.acquire(blocking=False) is True


# ------------------------------------------------------------ running count


def test_running_greenthreads_counts_started_calls_until_they_end():
    from nettools.kernel.greenthread import running_greenthreads

    settle()
    base = running_greenthreads()
    gate = Event()
    parked = [spawn(gate.wait) for _ in range(5)]
    quick = [spawn(lambda: None) for _ in range(5)]  # end without waiting: workers reused
    settle()
    assert running_greenthreads() == base + 5
    gate.send(None)
    for gt in parked + quick:
        gt.wait()
    settle()
    assert running_greenthreads() == base


def test_running_greenthreads_drops_a_killed_greenthread():
    from nettools.kernel.greenthread import running_greenthreads

    settle()
    base = running_greenthreads()
    gt = spawn(sleep, 60)
    settle()
    assert running_greenthreads() == base + 1
    kill(gt)
    assert running_greenthreads() == base
