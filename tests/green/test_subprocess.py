"""nettools.green.subprocess: waiting for and talking to children parks greenthreads."""

from __future__ import annotations

import subprocess as stdlib_subprocess
import sys
import time

import pytest
from helpers.green import ticker
from helpers.isolated import run_isolated

import nettools
from nettools.green import subprocess as gsubprocess

pytestmark = pytest.mark.timeout(60)

PY = sys.executable


def test_stdlib_names_and_classes():
    assert gsubprocess.PIPE == stdlib_subprocess.PIPE
    assert gsubprocess.TimeoutExpired is stdlib_subprocess.TimeoutExpired
    assert gsubprocess.CalledProcessError is stdlib_subprocess.CalledProcessError
    assert gsubprocess.CompletedProcess is stdlib_subprocess.CompletedProcess
    assert gsubprocess.SubprocessError is stdlib_subprocess.SubprocessError
    assert set(stdlib_subprocess.__all__) <= set(dir(gsubprocess))


def test_run_in_five_greenthreads_overlaps():
    start = time.monotonic()
    runs = [nettools.spawn(gsubprocess.run, ["sleep", "0.3"]) for _ in range(5)]
    results = [gt.wait() for gt in runs]
    elapsed = time.monotonic() - start
    assert all(r.returncode == 0 for r in results)
    assert isinstance(results[0], stdlib_subprocess.CompletedProcess)
    assert elapsed < 1.3, elapsed  # one after another: 1.5 s


def test_wait_parks_and_times_out():
    ticks: list = []
    ticker(ticks)
    p = gsubprocess.Popen(["sleep", "0.2"])
    with pytest.raises(stdlib_subprocess.TimeoutExpired):
        p.wait(timeout=0.05)
    assert p.wait() == 0
    assert len(ticks) == 5
    assert p.wait() == 0  # again: the known return code


def test_two_greenthreads_wait_for_one_child():
    p = gsubprocess.Popen(["sleep", "0.1"])
    waits = [nettools.spawn(p.wait) for _ in range(2)]
    assert [gt.wait() for gt in waits] == [0, 0]


def test_communicate_with_large_input_and_output():
    data = b"0123456789" * 100_000  # 1 MB: more than any pipe buffer
    ticks: list = []
    ticker(ticks)
    proc = gsubprocess.Popen(
        [PY, "-c", "import sys, time; time.sleep(0.1); d = sys.stdin.buffer.read(); "
         "sys.stdout.buffer.write(d); sys.stderr.write(str(len(d)))"],
        stdin=gsubprocess.PIPE, stdout=gsubprocess.PIPE, stderr=gsubprocess.PIPE,
    )  # fmt: skip
    out, err = proc.communicate(data, timeout=30)
    assert out == data and err == b"1000000"
    assert proc.returncode == 0
    assert len(ticks) == 5


def test_communicate_timeout_then_finish():
    proc = gsubprocess.Popen(
        [PY, "-c", "import time; print('a', flush=True); time.sleep(0.3); print('b')"],
        stdout=gsubprocess.PIPE,
        text=True,
    )
    with pytest.raises(stdlib_subprocess.TimeoutExpired):
        proc.communicate(timeout=0.1)
    out, _ = proc.communicate(timeout=10)
    assert out == "a\nb\n"


def test_reading_pipes_directly_parks():
    proc = gsubprocess.Popen(
        ["sh", "-c", "echo one; sleep 0.2; echo two"], stdout=gsubprocess.PIPE, text=True
    )
    ticks: list = []
    ticker(ticks)
    assert list(proc.stdout) == ["one\n", "two\n"]
    assert len(ticks) == 5
    assert proc.wait() == 0
    proc.stdout.close()


def test_writing_stdin_directly():
    proc = gsubprocess.Popen(["cat"], stdin=gsubprocess.PIPE, stdout=gsubprocess.PIPE)
    reader = nettools.spawn(proc.stdout.read)
    proc.stdin.write(b"z" * 300_000)
    proc.stdin.close()
    assert len(reader.wait()) == 300_000
    assert proc.wait() == 0
    proc.stdout.close()


def test_helpers():
    assert gsubprocess.check_output(["echo", "hi"]) == b"hi\n"
    assert gsubprocess.call(["true"]) == 0
    with pytest.raises(stdlib_subprocess.CalledProcessError) as info:
        gsubprocess.check_call(["false"])
    assert info.value.returncode == 1
    with pytest.raises(stdlib_subprocess.TimeoutExpired):
        gsubprocess.run(["sleep", "5"], timeout=0.1)
    assert gsubprocess.getoutput("echo out") == "out"
    assert gsubprocess.getstatusoutput("exit 3") == (3, "")
    r = gsubprocess.run(["sh", "-c", "echo o; echo e >&2"], capture_output=True, text=True)
    assert (r.stdout, r.stderr) == ("o\n", "e\n")


def test_monkey_patched_subprocess():
    out = run_isolated(
        """
        import nettools
        nettools.monkey_patch(subprocess=True)
        import subprocess, time
        from nettools.green import subprocess as gsub
        assert subprocess.Popen is gsub.Popen and subprocess.run is gsub.run
        assert subprocess.TimeoutExpired is gsub.TimeoutExpired
        start = time.monotonic()
        runs = [nettools.spawn(subprocess.run, ["sleep", "0.3"]) for _ in range(5)]
        assert all(gt.wait().returncode == 0 for gt in runs)
        elapsed = time.monotonic() - start
        print("elapsed", round(elapsed, 2))
        assert elapsed < 1.3, elapsed
        assert subprocess.check_output(["echo", "x"]) == b"x\\n"
        print("OK")
        """
    )
    assert "elapsed" in out
