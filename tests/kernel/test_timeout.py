"""Timeout and with_timeout."""

from __future__ import annotations

import time

import pytest

from nettools import Event, Timeout, sleep, spawn, with_timeout
from nettools.kernel.timeout import is_timeout

pytestmark = pytest.mark.timeout(10)


def test_timeout_fires_not_before_its_deadline():
    t0 = time.monotonic()
    with pytest.raises(Timeout):
        with Timeout(0.05):
            sleep(2)
    assert 0.05 - 1e-3 <= time.monotonic() - t0 < 1.0


def test_with_timeout_raises_the_timeout_itself():
    with pytest.raises(Timeout) as info:
        with Timeout(0.01) as t:
            Event().wait()
    assert info.value is t


def test_cancelled_timeout_does_not_fire():
    t = Timeout(0.01)
    assert t.pending
    t.cancel()
    assert not t.pending
    sleep(0.05)  # past the deadline: nothing is raised


def test_pending_is_false_after_the_timeout_fired():
    t = Timeout(0.01)
    with pytest.raises(Timeout):
        sleep(1)
    assert not t.pending


def test_timeout_none_never_fires():
    with Timeout(None) as t:
        assert not t.pending
        sleep(0.02)


def test_block_that_finishes_in_time_raises_nothing_and_cancels():
    with Timeout(1) as t:
        sleep(0)
    assert not t.pending


def test_timeout_false_silences_the_timeout():
    reached = []
    with Timeout(0.01, False):
        sleep(1)
        reached.append("not silenced: never interrupted")
    assert reached == []


def test_custom_exception_class_is_raised():
    class Slow(Exception):
        pass

    with pytest.raises(Slow):
        with Timeout(0.01, Slow):
            sleep(1)


def test_custom_exception_instance_is_raised():
    exc = TimeoutError("took too long")
    with pytest.raises(TimeoutError) as info:
        with Timeout(0.01, exc):
            sleep(1)
    assert info.value is exc


def test_timeout_is_a_base_exception_not_caught_by_except_exception():
    assert issubclass(Timeout, BaseException)
    assert not issubclass(Timeout, Exception)
    swallowed = []
    with pytest.raises(Timeout):
        with Timeout(0.01):
            try:
                sleep(1)
            except Exception:
                swallowed.append(True)
    assert swallowed == []


def test_nested_inner_shorter_raises_the_inner_one():
    with Timeout(1) as outer:
        with pytest.raises(Timeout) as info:
            with Timeout(0.01) as inner:
                sleep(2)
        assert info.value is inner
        assert outer.pending
    assert not outer.pending


def test_nested_outer_shorter_raises_the_outer_one():
    with pytest.raises(Timeout) as info:
        with Timeout(0.01) as outer:
            with Timeout(1) as inner:
                sleep(2)
    assert info.value is outer
    assert not inner.pending  # cancelled on the way out


def test_timeout_raises_in_the_greenthread_that_set_it():
    def guarded():
        try:
            with Timeout(0.01):
                sleep(1)
        except Timeout:
            return "timed out here"

    other = spawn(sleep, 0.05)
    assert spawn(guarded).wait() == "timed out here"
    assert other.wait() is None  # untouched


def test_with_timeout_returns_the_value():
    assert with_timeout(1, lambda x, y=0: x + y, 1, y=2) == 3


def test_with_timeout_raises_timeout():
    with pytest.raises(Timeout):
        with_timeout(0.01, sleep, 1)


def test_with_timeout_returns_timeout_value_when_given():
    assert with_timeout(0.01, sleep, 1, timeout_value="late") == "late"


def test_with_timeout_value_does_not_swallow_another_timeout():
    def own_timeout():
        with Timeout(0.01):
            sleep(1)

    with pytest.raises(Timeout):
        with_timeout(1, own_timeout, timeout_value="wrongly swallowed")


def test_with_timeout_leaves_no_pending_timer(hub):
    live = hub.live_timers()
    with_timeout(1, lambda: None)
    assert hub.live_timers() == live


def test_is_timeout():
    assert is_timeout(Timeout())
    assert not is_timeout(ValueError())
