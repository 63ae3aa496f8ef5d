"""Debugging aids: blocking detection, hub listings and their stacks, exception
reporting for hub callbacks and tpool jobs, and the spew line tracer."""

from __future__ import annotations

import _thread
import logging
import subprocess
import sys
import textwrap
import time

import greenlet
import pytest
from helpers.green import settle

import nettools
from nettools import debug, tpool
from nettools.green import socket
from nettools.kernel.hub import Hub, get_hub

pytestmark = pytest.mark.timeout(30)

RES = 0.2  # blocking-detection resolution used by these tests, in seconds


class Warnings(logging.Handler):
    """Collects the blocking warnings and releases ``gate`` at the first one, so a
    test can block for real exactly until the watchdog has spoken."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []
        self.gate = _thread.allocate_lock()
        self.gate.acquire()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        if self.gate.locked():
            self.gate.release()

    def messages(self) -> list[str]:
        return [r.getMessage() for r in self.records]


@pytest.fixture
def blocking_warnings():
    logger = logging.getLogger("nettools.debug")
    handler = Warnings()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        yield handler
    finally:
        debug.hub_blocking_detection(False)
        logger.removeHandler(handler)
        logger.setLevel(old_level)


# ---------------------------------------------------------- blocking detection


def test_blocking_detection_names_the_real_sleep_that_blocked(blocking_warnings):
    def culprit():
        for _ in range(20):  # one pass, unless the watchdog thread was starved
            time.sleep(RES * 3)  # the real sleep: the hub cannot run
            if blocking_warnings.records:
                return

    debug.hub_blocking_detection(True, resolution=RES)
    nettools.spawn(culprit).wait()
    debug.hub_blocking_detection(False)

    messages = blocking_warnings.messages()
    assert len(messages) == 1, messages  # once per stretch, not once per tick
    text = messages[0]
    assert "without returning to the hub" in text
    assert __file__ in text
    assert "in culprit" in text
    assert "code in <GreenThread running" in text
    assert "time.sleep(RES * 3)" in text
    assert blocking_warnings.records[0].name == "nettools.debug"


def test_blocking_detection_is_silent_while_code_yields_and_while_idle(blocking_warnings):
    def polite():
        for _ in range(60):
            time.sleep(RES / 20)  # short real work between yields
            nettools.sleep(0)

    def rude():
        # Blocks for real until the watchdog reports it (bounded).
        blocking_warnings.gate.acquire(timeout=10)

    debug.hub_blocking_detection(True, resolution=RES)
    nettools.spawn(polite).wait()
    nettools.sleep(RES * 3)  # the hub idles in epoll: not blocking
    assert blocking_warnings.messages() == []

    # The same watchdog does see code that does not yield.
    nettools.spawn(rude).wait()
    debug.hub_blocking_detection(False)
    messages = blocking_warnings.messages()
    assert len(messages) == 1, messages
    assert "in rude" in messages[0]
    assert "blocking_warnings.gate.acquire(timeout=10)" in messages[0]


def test_blocking_detection_off_removes_every_hook():
    hub = get_hub()
    hooks_before = list(hub.turn_hooks)
    trace_before = greenlet.gettrace()
    with pytest.raises(ValueError):
        debug.hub_blocking_detection(True, resolution=0)
    debug.hub_blocking_detection(True, resolution=5)
    debug.hub_blocking_detection(True, resolution=3)  # retunes, does not stack a second one
    try:
        assert len(hub.turn_hooks) == len(hooks_before) + 1
        assert greenlet.gettrace() is not trace_before
        assert debug._watchdogs[hub].resolution == 3
    finally:
        debug.hub_blocking_detection(False)
    assert hub.turn_hooks == hooks_before
    assert greenlet.gettrace() is trace_before
    assert hub not in debug._watchdogs

    def watchdog_running() -> bool:
        return any(
            f.f_code is debug._Watchdog._watch.__code__ for f in sys._current_frames().values()
        )

    for _ in range(500):
        if not watchdog_running():
            break
        nettools.sleep(0.01)
    assert not watchdog_running()


def test_blocking_detection_after_monkey_patching(tmp_path):
    # Patched before nettools.debug is imported: the watchdog must still be a real
    # OS thread, or it could never run while the hub is blocked.
    proc = run_file(
        tmp_path,
        """
        import nettools
        nettools.monkey_patch()
        import logging, sys, time
        logging.basicConfig(stream=sys.stdout, level=logging.WARNING, format="%(message)s")
        from nettools import debug, patcher

        def culprit():
            patcher.original("time").sleep(0.6)

        debug.hub_blocking_detection(True, resolution=0.1)
        nettools.spawn(culprit).wait()
        time.sleep(0.3)  # green after patching: the hub idles, nothing to report
        debug.hub_blocking_detection(False)
        print("DONE")
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("blocking detected") == 1, proc.stdout
    assert 'patcher.original("time").sleep(0.6)' in proc.stdout
    assert proc.stdout.rstrip().endswith("DONE")


# ---------------------------------------------------------------- hub listings


@pytest.fixture
def waiting_reader():
    """A greenthread parked in ``recv`` on one end of a socket pair."""
    a, b = socket.socketpair()

    def wait_for_data():
        return b.recv(16)

    def outer_caller():
        return wait_for_data()

    gt = nettools.spawn(outer_caller)
    settle()  # it has tried to read and is parked on the fd
    yield gt, b.fileno()
    debug.hub_listener_stacks(False)
    a.sendall(b"x")
    assert gt.wait() == b"x"
    a.close()
    b.close()


def test_format_hub_listeners_names_the_waiting_greenthread(waiting_reader):
    gt, fd = waiting_reader
    text = debug.format_hub_listeners()
    line = next(ln for ln in text.splitlines() if ln.startswith(f"fd {fd} "))
    assert "read" in line
    assert repr(gt) in line
    assert f"{__file__}:" in line and "in wait_for_data" in line
    assert 'File "' not in text  # no stacks unless asked for


def test_a_listener_parked_by_nettools_code_is_named_by_that_code():
    # Every frame of a server's acceptor is nettools' own: the listing names the
    # innermost one outside the kernel and green plumbing, not the hub's switch.
    server = nettools.Server(nettools.listen(("127.0.0.1", 0)), lambda conn, addr: None)
    server.start()
    fd = server.socket.fileno()
    try:
        settle()
        assert get_hub().fds[fd].reader is not None  # the acceptor is parked
        text = debug.format_hub_listeners()
        line = next(ln for ln in text.splitlines() if ln.startswith(f"fd {fd} "))
        assert "nettools/net.py:" in line and "in _accept_loop" in line, line
    finally:
        server.stop()


def test_hub_listener_stacks_show_where_the_wait_began(waiting_reader):
    _gt, fd = waiting_reader
    debug.hub_listener_stacks(True)
    text = debug.format_hub_listeners()
    assert f"fd {fd} read" in text
    assert "return b.recv(16)" in text
    assert "in outer_caller" in text
    debug.hub_listener_stacks(False)
    assert "return b.recv(16)" not in debug.format_hub_listeners()


def test_eventlets_hub_switch_for_listener_stacks(waiting_reader):
    hub = get_hub()
    hub.set_debug_listeners(True)
    try:
        assert "in outer_caller" in debug.format_hub_listeners()
    finally:
        hub.set_debug_listeners(False)
    assert "in outer_caller" not in debug.format_hub_listeners()


def test_eventlets_hub_switch_for_timer_exceptions(capsys):
    hub = get_hub()

    def fail() -> None:
        raise KeyError("in a timer")

    hub.set_timer_exceptions(True)
    try:
        hub.schedule(0, fail)
        nettools.sleep(0.01)
    finally:
        hub.set_timer_exceptions(False)
    assert "KeyError: 'in a timer'" in capsys.readouterr().err
    hub.schedule(0, fail)
    nettools.sleep(0.01)
    assert "in a timer" not in capsys.readouterr().err  # logged only


def test_listings_of_an_idle_hub():
    hub = Hub()  # a hub of its own: nothing waits on it
    try:
        assert debug.format_hub_listeners(hub) == "no listeners: nothing waits on a file descriptor"
        assert debug.format_hub_timers(hub) == "no pending timers"
    finally:
        hub.close()


def test_format_hub_timers_shows_a_pending_sleep():
    def sleeper():
        nettools.sleep(30)

    gt = nettools.spawn(sleeper)
    settle()
    try:
        text = debug.format_hub_timers()
        line = next(ln for ln in text.splitlines() if "in sleeper" in ln)
        assert line.startswith("due in ")
        due = float(line.split()[2].rstrip("s:"))
        assert 0 < due <= 30
        assert repr(gt) in line
    finally:
        gt.kill()
    assert "in sleeper" not in debug.format_hub_timers()


def test_hub_timer_stacks_record_where_timers_were_scheduled():
    hub = get_hub()
    fired = nettools.Event()

    def noop():
        pass

    def arm():
        return hub.schedule(30, noop)

    debug.hub_timer_stacks(True)
    try:
        timer = arm()
        text = debug.format_hub_timers()
        assert "noop()" in text
        assert "scheduled at:" in text
        assert "in arm" in text and "return hub.schedule(30, noop)" in text
        # Recorded timers still fire, with their arguments, through every entry point.
        hub.schedule(0, fired.send, "global")
        assert fired.wait() == "global"
        assert nettools.spawn_after(0, lambda: "later").wait() == "later"
        with nettools.Timeout(0.01, False):
            nettools.Event().wait()
        timer.cancel()
    finally:
        debug.hub_timer_stacks(False)
    assert "schedule" not in vars(hub)
    assert hub.schedule.__func__ is type(hub).schedule
    timer = hub.schedule(30, noop)
    try:
        assert "scheduled at:" not in debug.format_hub_timers()
    finally:
        timer.cancel()


# ------------------------------------------------------------ error reporting


def test_hub_exceptions_prints_to_stderr_only_when_on(capsys, caplog):
    caplog.set_level(logging.ERROR, logger="nettools.hub")

    def boom():
        raise ZeroDivisionError("from a hub callback")

    debug.hub_exceptions(True)
    try:
        get_hub().run_callback(boom)
        nettools.spawn_n(lambda: {}["missing key in spawn_n"])
        settle()
        err = capsys.readouterr().err
        assert "ZeroDivisionError: from a hub callback" in err
        assert "Traceback (most recent call last)" in err
        assert "in boom" in err
        assert "missing key in spawn_n" in err
    finally:
        debug.hub_exceptions(False)
    assert [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]

    caplog.clear()
    get_hub().run_callback(boom)
    settle()
    assert "ZeroDivisionError" not in capsys.readouterr().err
    # Still logged when off.
    assert [r for r in caplog.records if r.exc_info and r.exc_info[0] is ZeroDivisionError]


def test_hub_exceptions_prints_a_spawned_greenthreads_error_too(capsys):
    def fail(what: str) -> None:
        raise KeyError(what)

    debug.hub_exceptions(True)
    try:
        gt = nettools.spawn(fail, "printed, as eventlet prints it")
        with pytest.raises(KeyError):
            gt.wait()  # and still raised to whoever waits
        assert "KeyError: 'printed, as eventlet prints it'" in capsys.readouterr().err
    finally:
        debug.hub_exceptions(False)
    gt = nettools.spawn(fail, "kept for wait() alone")
    with pytest.raises(KeyError):
        gt.wait()
    assert "kept for wait() alone" not in capsys.readouterr().err


def test_tpool_exceptions_logs_job_errors_that_still_propagate(caplog):
    caplog.set_level(logging.ERROR, logger="nettools.tpool")

    def fail():
        raise ValueError("bad input in a thread")

    def logged() -> list[logging.LogRecord]:
        return [
            r
            for r in caplog.records
            if r.name == "nettools.tpool" and r.exc_info and r.exc_info[0] is ValueError
        ]

    with pytest.raises(ValueError):
        tpool.execute(fail)
    assert logged() == []

    debug.tpool_exceptions(True)
    try:
        with pytest.raises(ValueError, match="bad input"):
            tpool.execute(fail)
        assert len(logged()) == 1
        assert "fail" in caplog.text and "bad input in a thread" in caplog.text
        tpool.killall()  # the setting holds for the pool created next
        with pytest.raises(ValueError):
            tpool.execute(fail)
        assert len(logged()) == 2
        assert tpool.execute(lambda: 7) == 7
    finally:
        debug.tpool_exceptions(False)
    with pytest.raises(ValueError):
        tpool.execute(fail)
    assert len(logged()) == 2


# ------------------------------------------------------------------- spew


def run_file(tmp_path, code: str) -> subprocess.CompletedProcess:
    """Run ``code`` from a real file (spew prints source lines read from it)."""
    path = tmp_path / "spewed.py"
    path.write_text(textwrap.dedent(code))
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=30)


def test_spew_traces_greenthreads_new_and_parked(tmp_path):
    proc = run_file(
        tmp_path,
        """
        import weakref

        import nettools
        from nettools import debug

        def parked(ev):
            ev.wait()
            resumed = "parked before spew, resumed after"
            return resumed

        def work(n):
            total = n + 1
            return total

        class Referent:
            pass

        referent = Referent()
        proxy = weakref.proxy(referent)  # dead, among the collector's objects
        del referent
        ev = nettools.Event()
        p = nettools.spawn(parked, ev)
        nettools.sleep(0)
        debug.spew(trace_names=["__main__"], show_values=True)
        result = nettools.spawn(work, 41).wait()
        ev.send()
        p.wait()
        debug.unspew()
        untraced = "after unspew"
        print("RESULT", result)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    path = str(tmp_path / "spewed.py")
    assert f"{path}:13: total = n + 1" in out
    assert "    n = 41" in out
    assert f"{path}:9: resumed = " in out  # a greenthread parked before spew()
    assert f"{path}:26: result = nettools.spawn(work, 41).wait()" in out  # spew's caller
    assert "untraced" not in out
    assert "nettools/kernel/hub.py" not in out  # trace_names keeps other modules out
    assert out.rstrip().endswith("RESULT 42")


def test_spew_traces_every_module_and_unspew_restores_the_previous_tracer(tmp_path):
    proc = run_file(
        tmp_path,
        """
        import sys
        import nettools
        from nettools import debug

        def mine(frame, event, arg):
            return None

        sys.settrace(mine)
        debug.spew()
        nettools.spawn(lambda: 1).wait()
        debug.unspew()
        print("RESTORED", sys.gettrace() is mine)
        sys.settrace(None)
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "nettools/kernel/greenthread.py:" in proc.stdout
    assert "RESTORED True" in proc.stdout


def test_spew_prints_no_line_of_a_module_it_was_not_asked_for(capsys):
    spew = debug.Spew(trace_names=["some.other.module"])
    spew(sys._getframe(), "line", None)
    assert capsys.readouterr().out == ""
