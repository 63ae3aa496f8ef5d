"""monkey_patch, import_patched, is_monkey_patched, original (each patching test isolated)."""

from __future__ import annotations

import sys

import pytest
from helpers.isolated import run_isolated, write_module

import nettools
from nettools.green._importer import fresh_import

pytestmark = pytest.mark.timeout(90)

# Prints which monkey_patch keywords are patched, one line.
REPORT = """
from nettools import patcher
print("patched", sorted(k for k in patcher._GREEN if nettools.is_monkey_patched(k)))
"""


def _patched_after(call: str) -> list[str]:
    out = run_isolated(f"import nettools\n{call}\n{REPORT}\nprint('OK')\n")
    line = next(x for x in out.splitlines() if x.startswith("patched"))
    return eval(line[len("patched ") :])


def test_reexported_from_nettools():
    assert nettools.monkey_patch is nettools.patcher.monkey_patch
    assert nettools.import_patched is nettools.patcher.import_patched
    assert nettools.is_monkey_patched is nettools.patcher.is_monkey_patched


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        ("nettools.monkey_patch(time=True)", ["time"]),
        ("nettools.monkey_patch(time=True, os=True)", ["os", "time"]),
        ("nettools.monkey_patch(thread=True)", ["queue", "thread"]),
        ("nettools.monkey_patch(thread=True, queue=False)", ["thread"]),
        ("nettools.monkey_patch(select=True)", ["select", "selectors"]),
        ("nettools.monkey_patch(all=False)", []),
        ("nettools.monkey_patch(all=False, time=True)", ["time"]),
    ],
)
def test_which_modules_get_patched(call, expected):
    assert _patched_after(call) == expected


def test_default_patches_everything_and_false_excludes():
    everything = _patched_after("nettools.monkey_patch()")
    assert set(everything) >= {"os", "select", "selectors", "thread", "time", "queue",
                               "subprocess"}  # fmt: skip
    assert "thread" not in _patched_after("nettools.monkey_patch(thread=False)")
    assert "socket" in everything or "socket" not in sys.modules  # socket needs the lead's module


def test_patches_in_place_and_twice_is_harmless():
    run_isolated(
        """
        import time, threading, select, os
        real_sleep = time.sleep
        real_select = select.select
        from time import sleep as early_sleep
        import nettools
        from nettools.green import time as gtime, select as gselect, threading as gthreading
        nettools.monkey_patch()
        nettools.monkey_patch()
        nettools.monkey_patch(time=True)
        assert time.sleep is gtime.sleep and select.select is gselect.select
        assert threading.Lock is gthreading.Lock
        assert early_sleep is real_sleep           # only attribute lookups see green objects
        from nettools.patcher import original
        assert original("time").sleep is real_sleep
        assert original("select").select is real_select
        assert original("time") is original("time")
        assert original("time") is not time
        # still working after the second call
        start = time.monotonic()
        ts = [threading.Thread(target=time.sleep, args=(0.2,)) for _ in range(10)]
        for t in ts: t.start()
        for t in ts: t.join()
        assert time.monotonic() - start < 1.5
        print("OK")
        """
    )


def test_is_monkey_patched_accepts_names_keywords_and_modules():
    run_isolated(
        """
        import nettools, threading, _thread, time, os
        assert not nettools.is_monkey_patched("thread")
        nettools.monkey_patch(thread=True)
        for m in ("thread", "threading", "_thread", threading, _thread, "queue"):
            assert nettools.is_monkey_patched(m), m
        for m in ("time", time, "os", os, "socket", "nonsense"):
            assert not nettools.is_monkey_patched(m), m
        print("OK")
        """
    )


def test_original_modules_are_pristine():
    run_isolated(
        """
        import _thread, queue as real_queue_mod, time
        RealLock = type(_thread.allocate_lock())
        import nettools
        nettools.monkey_patch()
        import threading, queue, select
        from nettools.patcher import original
        othreading = original("threading")
        assert othreading is not threading
        assert type(othreading.Lock()) is RealLock
        # a real OS thread from the pristine module really runs in parallel with the hub
        out = []
        t = othreading.Thread(target=lambda: out.append(othreading.current_thread().name))
        t.start(); t.join()
        assert out and out[0].startswith("Thread-"), out
        oqueue = original("queue")
        assert type(oqueue.Queue().mutex) is RealLock
        assert oqueue.Empty is real_queue_mod.Empty    # exceptions come from _queue
        assert original("_thread").allocate_lock is _thread.allocate_lock or True
        assert type(original("_thread").allocate_lock()) is RealLock
        assert original("select").select.__module__ == "select"
        assert original("os").read is not __import__("os").read
        print("OK")
        """
    )


def test_import_patched_gives_a_private_green_copy(tmp_path):
    write_module(
        tmp_path,
        "target_mod",
        """
        import socket, select, time, threading, queue, subprocess, os
        import plain_helper
        import net_helper

        def sleeper():
            return time.sleep
        """,
    )
    write_module(tmp_path, "plain_helper", "VALUE = 42\n")
    write_module(tmp_path, "net_helper", "import time\nSLEEP = time.sleep\n")
    run_isolated(
        """
        import sys, time, threading, select
        import nettools
        import nettools.green.subprocess, nettools.green.queue, nettools.green.os
        import nettools.green.socket, nettools.green.ssl
        before = dict(sys.modules)
        real_sleep = time.sleep
        mod = nettools.import_patched("target_mod")
        from nettools.green import time as gtime, threading as gthreading, select as gselect
        assert mod.time is gtime and mod.threading is gthreading and mod.select is gselect
        assert mod.sleeper() is gtime.sleep
        assert mod.net_helper.SLEEP is gtime.sleep
        # the real modules and sys.modules are untouched
        assert time.sleep is real_sleep and sys.modules["time"] is time
        assert not nettools.is_monkey_patched("time")
        assert "target_mod" not in sys.modules
        assert "net_helper" not in sys.modules      # it saw a green module: private
        assert sys.modules["plain_helper"] is mod.plain_helper   # shared, like any import
        changed = {k for k in before if sys.modules.get(k) is not before[k]}
        assert not changed, changed
        assert set(sys.modules) - set(before) == {"plain_helper"}, set(sys.modules) - set(before)
        # a second copy is a different module
        again = nettools.import_patched("target_mod", time=False)
        assert again is not mod and again.time is time
        # additional modules, as (name, module) pairs
        import types
        fake = types.ModuleType("select")
        third = nettools.import_patched("target_mod", ("select", fake))
        assert third.select is fake
        print("OK")
        """,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )


def test_inject_makes_a_copy_with_the_given_modules_and_fills_globals(tmp_path):
    write_module(tmp_path, "inj_target", "import socket, time\nNAME = 'target'\n")
    run_isolated(
        """
        import socket, time, types
        import nettools
        from nettools.green import socket as gsocket, time as gtime
        mine = {"__name__": "mine"}
        mod = nettools.patcher.inject("inj_target", mine, ("socket", gsocket))
        assert mod.socket is gsocket and mod.time is time  # only what was given
        assert mine["socket"] is gsocket and mine["NAME"] == "target"
        assert mine["__name__"] == "mine" and "__spec__" not in mine
        default = nettools.patcher.inject("inj_target", None)  # the green set
        assert default.socket is gsocket and default.time is gtime and default is not mod
        assert socket.socket is not gsocket.socket  # nothing patched
        print("OK")
        """,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )


def test_import_patched_leaves_packages_alone():
    run_isolated(
        """
        import sys, urllib, http
        import nettools
        import nettools.green.subprocess, nettools.green.queue, nettools.green.os
        from nettools.green import socket as gsocket
        assert not hasattr(urllib, "request") and not hasattr(http, "client")
        before = set(sys.modules)
        req = nettools.import_patched("urllib.request")
        assert req.__name__ == "urllib.request"
        # the real packages got no attribute, the real modules were not registered
        assert not hasattr(urllib, "request") and not hasattr(http, "client")
        assert "urllib.request" not in sys.modules and "http.client" not in sys.modules
        # the copy reaches its own green http.client through its "http" package
        assert req.http is not http and req.http.client.socket is gsocket
        # modules that never saw a green one are shared, as after a normal import
        new = set(sys.modules) - before
        assert "email.errors" in new and "email.utils" not in new, sorted(new)
        print("OK")
        """
    )


def test_import_patched_leaves_no_orphan_submodules():
    # urllib3 pulls in the email package for the first time; email.utils picks
    # up the green socket and stays private, while the package and its other
    # submodules stay shared and importable as usual afterwards.
    run_isolated(
        """
        import sys
        import nettools
        nettools.import_patched("urllib3")
        import email
        assert "email.utils" not in sys.modules and not hasattr(email, "utils")
        import http.client, email.header, email.utils
        assert email.header is sys.modules["email.header"] and email.quoprimime
        assert email.message_from_string("Subject: hi\\n\\nbody")["Subject"] == "hi"
        print("OK")
        """
    )


def test_late_threading_and_ssl_imports_warn(tmp_path):
    write_module(tmp_path, "early_locks", "import threading\nLOCK = threading.Lock()\n")
    write_module(tmp_path, "early_local", "from threading import local\nDATA = local()\n")
    write_module(tmp_path, "early_tls", "from ssl import SSLContext\n")
    write_module(tmp_path, "harmless", "import threading, ssl\n")
    out = run_isolated(
        """
        import warnings
        import early_locks, early_local, early_tls, harmless
        import nettools
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            nettools.monkey_patch()
        messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
        for m in messages:
            print(m)
        ssl_msgs = [m for m in messages if "ssl" in m]
        thread_msgs = [m for m in messages if "threading was patched" in m]
        assert len(ssl_msgs) == 1 and "early_tls" in ssl_msgs[0]
        assert len(thread_msgs) == 1
        assert "early_locks" in thread_msgs[0] and "early_local" in thread_msgs[0]
        assert "harmless" not in " ".join(messages)
        print("OK")
        """,
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    assert "early_tls" in out


def test_clean_program_gets_no_warning():
    run_isolated(
        """
        import warnings
        warnings.simplefilter("error")
        import nettools
        nettools.monkey_patch()
        import threading, ssl, socket
        print("OK")
        """
    )


# ---------------------------------------------------------------- fresh_import


def test_fresh_import_is_a_separate_copy():
    import json

    copy = fresh_import("json", {})
    assert copy is not json
    assert sys.modules["json"] is json
    assert copy.dumps([1]) == "[1]"
