"""nettools.green.time: a drop-in ``time`` whose ``sleep`` yields to the hub."""

from __future__ import annotations

import time as stdlib_time

import pytest
from helpers.green import ticker
from helpers.isolated import run_isolated

import nettools
from nettools.green import time as gtime

pytestmark = pytest.mark.timeout(60)


def test_reexports_the_stdlib_module():
    assert gtime.monotonic is stdlib_time.monotonic
    assert gtime.struct_time is stdlib_time.struct_time
    assert gtime.strftime("%Y", gtime.gmtime(0)) == "1970"
    assert gtime.__patched__ == ["sleep"]
    assert gtime.sleep is not stdlib_time.sleep


def test_sleep_lets_other_greenthreads_run():
    ticks: list = []
    gt = ticker(ticks, 5, 0.02)
    start = stdlib_time.monotonic()
    gtime.sleep(0.2)
    assert stdlib_time.monotonic() - start >= 0.19
    assert len(ticks) == 5  # the ticker ran while we slept
    gt.wait()


def test_sleep_zero_yields_once():
    order = []
    nettools.spawn(order.append, "other")
    gtime.sleep(0)
    assert order == ["other"]


def test_concurrent_sleeps_overlap():
    start = stdlib_time.monotonic()
    threads = [nettools.spawn(gtime.sleep, 0.2) for _ in range(20)]
    for gt in threads:
        gt.wait()
    # 20 sequential sleeps would take 4 s
    assert stdlib_time.monotonic() - start < 2.0


def test_negative_sleep_is_an_error():
    with pytest.raises(ValueError):
        gtime.sleep(-1)


def test_sleep_inside_a_hub_callback_does_not_raise():
    done = nettools.Event()

    def callback() -> None:
        gtime.sleep(0.001)  # the hub cannot wait; this falls back to a real sleep
        done.send(True)

    nettools.get_hub().run_callback(callback)
    assert done.wait(5) is True


def test_monkey_patched_time_sleep_yields():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch(time=True)
        import time, socket
        from nettools.green import time as gtime
        assert time.sleep is gtime.sleep
        assert nettools.is_monkey_patched("time")
        assert not nettools.is_monkey_patched("socket")
        assert socket.socket.__module__ == "socket"  # nothing else was touched
        ticks = []
        def tick():
            for _ in range(5):
                ticks.append(1)
                time.sleep(0.02)
        gt = nettools.spawn(tick)
        time.sleep(0.3)
        print("ticks", len(ticks))
        assert len(ticks) == 5
        gt.wait()
        print("OK")
        """
    )
    assert "ticks 5" in out
