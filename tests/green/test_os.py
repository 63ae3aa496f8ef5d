"""nettools.green.os: reads/writes on non-blocking fds and child waits park greenthreads."""

from __future__ import annotations

import os as stdlib_os
import subprocess
import sys
import time

import pytest
from helpers.green import settle, ticker
from helpers.isolated import run_isolated

import nettools
from nettools.green import os as gos

pytestmark = pytest.mark.timeout(60)


def test_reexports_everything():
    assert gos.path is stdlib_os.path
    assert gos.environ is stdlib_os.environ
    assert gos.getpid() == stdlib_os.getpid()
    assert gos.WNOHANG == stdlib_os.WNOHANG
    assert set(stdlib_os.__all__) <= set(dir(gos))
    assert set(gos.__patched__) == {"read", "write", "waitpid", "wait", "wait3", "wait4"}


def test_read_parks_on_a_non_blocking_fd(pipe):
    r, w = pipe
    ticks: list = []
    ticker(ticks)
    nettools.spawn_after(0.1, stdlib_os.write, w, b"hello")
    assert gos.read(r, 100) == b"hello"
    assert len(ticks) == 5


def test_write_parks_while_the_pipe_is_full(pipe):
    r, w = pipe
    chunk = b"x" * 65536
    while True:  # fill the pipe
        try:
            stdlib_os.write(w, chunk)
        except BlockingIOError:
            break
    drained = []

    def drain() -> None:
        nettools.sleep(0.05)
        while True:
            try:
                drained.append(len(stdlib_os.read(r, 1 << 20)))
            except BlockingIOError:
                return

    nettools.spawn(drain)
    assert gos.write(w, b"more") == 4
    assert drained


def test_blocking_fds_are_plain_calls():
    r, w = stdlib_os.pipe()
    try:
        assert gos.write(w, b"abc") == 3
        assert gos.read(r, 3) == b"abc"
    finally:
        stdlib_os.close(r)
        stdlib_os.close(w)


def test_waitpid_parks_only_the_greenthread():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
    ticks: list = []
    ticker(ticks)
    start = time.monotonic()
    pid, status = gos.waitpid(proc.pid, 0)
    assert pid == proc.pid and stdlib_os.waitstatus_to_exitcode(status) == 0
    assert time.monotonic() - start >= 0.2
    assert len(ticks) == 5
    proc.returncode = 0  # reaped by us


def test_concurrent_waits_overlap():
    # The children live until we close the pipe they read: a waitpid that
    # blocked the thread would never let us get there.
    r, w = stdlib_os.pipe()
    procs = [subprocess.Popen(["cat"], stdin=r, stdout=subprocess.DEVNULL) for _ in range(5)]
    stdlib_os.close(r)
    waits = [nettools.spawn(gos.waitpid, p.pid, 0) for p in procs]
    try:
        settle()
        assert not any(gt.dead for gt in waits)  # all five wait at once
    finally:
        stdlib_os.close(w)
    assert sorted(gt.wait()[0] for gt in waits) == sorted(p.pid for p in procs)
    for p in procs:
        p.returncode = 0


def test_wait4_for_one_child():
    proc = subprocess.Popen(["sleep", "0.05"])
    assert gos.waitpid(proc.pid, gos.WNOHANG) == (0, 0)
    pid, status, rusage = gos.wait4(proc.pid, 0)
    assert pid == proc.pid and status == 0 and rusage.ru_utime >= 0
    proc.returncode = 0


def test_waits_for_any_child():
    # In a fresh process: the test runner's own children must not interfere.
    run_isolated(
        """
        import subprocess
        import nettools
        from nettools.green import os as gos
        ticks = []
        def tick():
            for _ in range(5):
                ticks.append(1)
                nettools.sleep(0.01)
        nettools.spawn(tick)
        p = subprocess.Popen(["sleep", "0.1"])
        pid, status = gos.wait()
        assert (pid, status) == (p.pid, 0)
        assert len(ticks) >= 3, ticks
        p.returncode = 0
        p = subprocess.Popen(["sleep", "0.05"])
        pid, status, _ = gos.wait3(0)
        assert (pid, status) == (p.pid, 0)
        p.returncode = 0
        try:
            gos.waitpid(-1, 0)
        except ChildProcessError:
            pass
        else:
            raise AssertionError("no children left: waitpid must fail")
        print("OK")
        """
    )


def test_monkey_patched_os():
    run_isolated(
        """
        import nettools
        nettools.monkey_patch(os=True)
        import os, subprocess, time
        from nettools.green import os as gos
        assert os.read is gos.read and os.waitpid is gos.waitpid
        assert os.getcwd is gos.getcwd
        r, w = os.pipe()
        os.set_blocking(r, False)
        nettools.spawn_after(0.05, os.write, w, b"late")
        assert os.read(r, 10) == b"late"
        ticks = []
        def tick():
            for _ in range(5):
                ticks.append(1)
                nettools.sleep(0.01)
        nettools.spawn(tick)
        p = subprocess.Popen(["sleep", "0.2"])
        assert os.waitpid(p.pid, 0)[0] == p.pid
        assert len(ticks) == 5
        print("OK")
        """
    )
