"""Run one CPython test module under ``nettools.monkey_patch()`` and report it as JSON.

Usage::

    python tests/patcher/cpython/run_patched.py test_socket [--json OUT] [--no-patch]
        [--test-timeout 60] [--skip-file known_failures.toml]
        [-k SUBSTRING ...] [--only TEST_ID ...]

The command runs as a *supervisor*: it starts a *worker* (this same script with
``--worker``) that monkey-patches first thing, loads ``test.<module>`` with
unittest's loader and runs it, appending one JSON line per event to a file.
A watchdog OS thread in the worker turns a test that outlives the per-test limit
into an error carrying the stacks of every thread and greenlet, then ends the
worker; the supervisor starts a new worker after that test, so one hang costs
one test, not the whole module.  A worker that dies (segfault, ``os._exit``)
is handled the same way.  The final JSON lists passed/failed/errors/skipped
test ids, with short tracebacks.

Resources (``test.support``): only ``network`` is enabled, because
``test_socketserver`` and ``test_timeout`` gate their loopback tests on it.
Tests that need the internet all go through ``socket_helper.transient_internet``;
the worker makes it skip at once, so they never run.
"""

from __future__ import annotations

import sys

# Patch before anything else is imported: unittest, test.support and the
# test module must all see the green modules.
if __name__ == "__main__" and "--worker" in sys.argv and "--no-patch" not in sys.argv:
    import nettools

    nettools.monkey_patch()

import argparse  # noqa: E402 - after monkey_patch on purpose
import contextlib  # noqa: E402
import faulthandler  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import unittest  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, NoReturn  # noqa: E402

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]  # tests/patcher/cpython -> the checkout
#: Exit status of a worker stopped by its watchdog.
HANG_EXIT = 75
#: Tracebacks are cut to this many characters (the tail: where it failed).
MAX_DETAIL = 3000
#: A worker that dies before starting any test is retried this many times.
MAX_FRUITLESS_RESTARTS = 1

RESOURCES = ["network"]


# ====================================================================== worker


def _original(name: str) -> Any:
    """The unpatched module ``name`` (the watchdog must be a real OS thread)."""
    if "nettools" in sys.modules:
        from nettools import patcher

        if patcher.is_monkey_patched(name):
            return patcher.original(name)
    return __import__(name)


def _short(text: str, limit: int = MAX_DETAIL) -> str:
    text = text.rstrip()
    return text if len(text) <= limit else "...\n" + text[-limit:]


def _format_err(test: Any, err: Any) -> str:
    exc_type, exc, tb = err
    # Drop unittest's own frames, as its TextTestResult does.
    while tb is not None and "__unittest" in tb.tb_frame.f_globals:
        tb = tb.tb_next
    return "".join(traceback.format_exception(exc_type, exc, tb))


class _Events:
    """Append-only JSON lines; one ``os.write`` per event so the watchdog can share it."""

    def __init__(self, path: str) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.pid = os.getpid()

    def emit(self, **event: Any) -> None:
        if os.getpid() != self.pid:
            return  # a forked child running on in test code must not report
        os.write(self.fd, (json.dumps(event) + "\n").encode())


class _Result(unittest.TestResult):
    """Folds everything unittest reports about one test into one status."""

    _RANK = {"passed": 0, "skipped": 1, "failed": 2, "error": 3}

    def __init__(self, events: _Events, limit: float) -> None:
        super().__init__()
        self.events = events
        self.limit = limit
        self.current: str | None = None
        self.last: str | None = None  # the last test that finished
        self.started = time.monotonic()
        self.status = "passed"
        self.details: list[str] = []

    def _progress(self) -> None:
        """Restart the clocks: the watchdog's, and faulthandler's as a backstop
        for a hang that holds the GIL (the watchdog cannot run then)."""
        self.started = time.monotonic()
        faulthandler.dump_traceback_later(2 * self.limit + 30, exit=True)

    def _set(self, status: str, detail: str = "") -> None:
        if self._RANK[status] >= self._RANK[self.status]:
            self.status = status
        if detail:
            self.details.append(detail)

    def startTest(self, test: Any) -> None:
        super().startTest(test)
        self.current, self.status, self.details = test.id(), "passed", []
        self._progress()
        self.events.emit(event="start", id=self.current)

    def stopTest(self, test: Any) -> None:
        super().stopTest(test)
        died = _revive_hub()
        if died:
            self._set("error", died)
        detail = _short("\n".join(self.details))
        took = round(time.monotonic() - self.started, 3)
        self.events.emit(event="result", id=test.id(), status=self.status, detail=detail, time=took)
        self.current = None
        self.last = test.id()
        self._progress()

    def _outside(self, test: Any) -> bool:
        # setUpClass/setUpModule errors arrive for an _ErrorHolder, outside any test.
        return not isinstance(test, unittest.TestCase)

    def addError(self, test: Any, err: Any) -> None:
        if self._outside(test):
            detail = _short(_format_err(test, err))
            self.events.emit(event="result", id=test.id(), status="error", detail=detail)
            return
        self._set("error", _format_err(test, err))

    def addFailure(self, test: Any, err: Any) -> None:
        self._set("failed", _format_err(test, err))

    def addSubTest(self, test: Any, subtest: Any, err: Any) -> None:
        if err is not None:
            status = "failed" if issubclass(err[0], test.failureException) else "error"
            self._set(status, f"[subtest {subtest._subDescription()}]\n" + _format_err(test, err))

    def addSkip(self, test: Any, reason: str) -> None:
        if self._outside(test):
            self.events.emit(event="result", id=test.id(), status="skipped", detail=reason)
            return
        self._set("skipped", reason)

    def addExpectedFailure(self, test: Any, err: Any) -> None:
        pass  # the test itself says it fails: that is a pass

    def addUnexpectedSuccess(self, test: Any) -> None:
        self._set("failed", "unexpected success (the test is marked expectedFailure)")


def _revive_hub() -> str | None:
    """If the test killed this thread's hub, give the next tests a new one; say so.

    A dead hub makes every later wait return at once, so without this one
    broken test would fail all the tests after it.
    """
    hubmod = sys.modules.get("nettools.kernel.hub")
    hub = getattr(getattr(hubmod, "_tls", None), "hub", None)
    if hub is None or not hub.greenlet.dead:
        return None
    del hubmod._tls.hub
    with contextlib.suppress(OSError):
        hub.close()
    return "the nettools hub died during this test (an exception escaped its loop)"


def _iter_tests(suite: Any) -> Iterator[Any]:
    for item in suite:
        if isinstance(item, unittest.TestSuite):
            yield from _iter_tests(item)
        else:
            yield item


def _skip(test: unittest.TestCase, reason: str) -> None:
    """Make ``test`` report a skip without running (TestCase.run honours the marker)."""

    def skipped() -> None:  # pragma: no cover - never called
        pass

    skipped.__unittest_skip__ = True  # type: ignore[attr-defined]
    skipped.__unittest_skip_why__ = reason  # type: ignore[attr-defined]
    setattr(test, test._testMethodName, skipped)


def _no_internet(resource_name: str, *args: Any, **kwargs: Any) -> Any:
    """Replaces ``socket_helper.transient_internet``: this run never goes online."""
    from test import support

    raise support.ResourceDenied(f"needs the internet ({resource_name}); runs are loopback only")


def _configure_support() -> None:
    """What regrtest would set up, for the resources we allow."""
    from test import support
    from test.support import socket_helper

    support.use_resources = list(RESOURCES)
    support.verbose = 0
    support.failfast = False
    support.record_original_stdout(sys.stdout)
    socket_helper.transient_internet = _no_internet


def _dump_stacks() -> str:
    """Stacks of the other OS threads and of every suspended greenlet (innermost last)."""
    out = []
    me = _original("_thread").get_ident()
    for ident, frame in sys._current_frames().items():
        if ident != me:
            stack = "".join(traceback.format_stack(frame)[-12:])
            out.append(f"--- thread {ident} ---\n{stack}")
    greenlet = sys.modules.get("greenlet")
    if greenlet is not None:
        import gc

        shown = 0
        # Main greenlets first: the test itself usually waits in one of them.
        objs = [o for o in gc.get_objects() if issubclass(type(o), greenlet.greenlet)]
        objs.sort(key=lambda g: g.parent is not None)
        for obj in objs:
            if shown >= 25:
                out.append("--- (more greenlets not shown) ---")
                break
            try:
                if obj.gr_frame is None:
                    continue
                stack = "".join(traceback.format_stack(obj.gr_frame)[-10:])
            except Exception:  # a greenlet of another thread may refuse; skip it
                continue
            out.append(f"--- greenlet {obj!r} ---\n{stack}")
            shown += 1
    return "\n".join(out)


def _start_watchdog(result: _Result, events: _Events, limit: float, module: str) -> None:
    """A real OS thread: a test (or fixture) running past ``limit`` ends the worker."""
    real_thread = _original("_thread")
    real_sleep = _original("time").sleep

    def watch() -> None:
        while True:
            real_sleep(0.25)
            took = time.monotonic() - result.started
            if took < limit:
                continue
            # Between tests means in a class or module fixture.
            where = result.current or f"{module} (fixtures after {result.last or 'the start'})"
            detail = f"timed out after {took:.0f}s in {where}\n" + _dump_stacks()
            events.emit(
                event="result",
                id=where,
                status="error",
                # The head matters here: where the test itself was waiting.
                detail=detail[: 4 * MAX_DETAIL],
                timeout=True,
            )
            os._exit(HANG_EXIT)

    real_thread.start_new_thread(watch, ())


def worker(args: argparse.Namespace) -> NoReturn:
    """Run the module in this process, reporting to ``args.events``."""
    _configure_support()
    events = _Events(args.events)
    # A bare name is one of CPython's test modules; a dotted one is any module.
    # test_socket and test_asyncio.test_events are in the stdlib's test package.
    name = f"test.{args.module}" if args.module.startswith("test_") else args.module
    suite = unittest.defaultTestLoader.loadTestsFromName(name)
    tests = list(_iter_tests(suite))
    if args.after:
        ids = [t.id() for t in tests]
        if args.after in ids:
            tests = tests[ids.index(args.after) + 1 :]
    if args.k:
        tests = [t for t in tests if any(k in t.id() for k in args.k)]
    if args.only:
        wanted = set(args.only)
        tests = [t for t in tests if t.id() in wanted]
    skips = _load_skips(args.skip_file)
    for t in tests:
        reason = skips.get(t.id())
        if reason is not None and isinstance(t, unittest.TestCase):
            _skip(t, reason)
    result = _Result(events, args.test_timeout)
    _start_watchdog(result, events, args.test_timeout, args.module)
    result._progress()
    unittest.TestSuite(tests).run(result)
    faulthandler.cancel_dump_traceback_later()
    events.emit(event="done")
    # Exit now: interpreter shutdown would wait for any non-daemon (green)
    # thread a test left behind, possibly forever.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _load_skips(path: str | None) -> dict[str, str]:
    """Ids not to run: the ``environment`` and ``not_run`` tables of the known-failures file."""
    if not path:
        return {}
    import tomllib

    with open(path, "rb") as f:
        data = tomllib.load(f)
    skips: dict[str, str] = {}
    for table in ("environment", "not_run"):
        for test_id, reason in data.get(table, {}).items():
            skips[test_id] = f"{table}: {reason}"
    return skips


# ================================================================= supervisor


def _read_events(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    events = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def _tail(path: Path, n: int = 1500) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def _append(path: Path, **event: Any) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(event) + "\n")


def _worker_command(args: argparse.Namespace, events: Path, after: str | None) -> list[str]:
    cmd = [sys.executable, "-X", "faulthandler", str(Path(__file__).resolve()), args.module]
    cmd += ["--worker", "--events", str(events), "--test-timeout", str(args.test_timeout)]
    cmd += ["--no-patch"] if args.no_patch else []
    cmd += ["--after", after] if after else []
    cmd += ["--skip-file", args.skip_file] if args.skip_file else []
    for k in args.k or ():
        cmd += ["-k", k]
    for test_id in args.only or ():
        cmd += ["--only", test_id]
    return cmd


def supervise(args: argparse.Namespace) -> dict[str, Any]:
    """Run workers until the module is done; restart after the test that hung or crashed."""
    began = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix=f"nettools-{args.module}-"))
    events_path = work / "events.jsonl"
    log_path = work / "worker.log"
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONWARNINGS", None)
    after: str | None = None
    fruitless = 0
    restarts = 0
    try:
        while True:
            cwd = work / f"cwd{restarts}"  # a fresh directory for the tests' files
            cwd.mkdir()
            seen = len(_read_events(events_path))
            code: int | None
            with open(log_path, "ab") as log:
                try:
                    code = subprocess.run(
                        _worker_command(args, events_path, after),
                        cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                        timeout=args.run_timeout,
                    ).returncode  # fmt: skip
                except subprocess.TimeoutExpired:  # run() has killed it
                    code = None
            new = _read_events(events_path)[seen:]
            if any(e.get("event") == "done" for e in new):
                break
            # The worker died: record the test it was in, then go on after it.
            started = [e["id"] for e in new if e.get("event") == "start"]
            finished = {e.get("id") for e in new if e.get("event") == "result"}
            culprit = next((t for t in reversed(started) if t not in finished), None)
            if culprit is not None and code != HANG_EXIT:  # the watchdog reports its own
                why = f"worker died (exit status {code}) in this test\n"
                _append(events_path, event="result", id=culprit, status="error",
                        detail=why + _tail(log_path))  # fmt: skip
            if not started:
                # Died before any test (import, fixtures): retrying will not help.
                fruitless += 1
                if fruitless > MAX_FRUITLESS_RESTARTS:
                    if not any(e.get("event") == "result" for e in new):
                        why = f"worker exited {code} before running a test\n"
                        _append(events_path, event="result", id=f"{args.module} (worker)",
                                status="error", detail=why + _tail(log_path))  # fmt: skip
                    break
            else:
                fruitless = 0
                after = started[-1]
            restarts += 1
        report = _summarize(_read_events(events_path))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report.update(
        module=args.module,
        patched=not args.no_patch,
        restarts=restarts,
        duration=round(time.monotonic() - began, 1),
    )
    return report


def _summarize(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Last word per test id wins (a watchdog entry beats a missing result)."""
    final: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event") == "result" and e.get("id"):
            final[e["id"]] = e
    report: dict[str, Any] = {"passed": [], "failed": {}, "errors": {}, "skipped": {}}
    for test_id, e in final.items():
        status = e["status"]
        if status == "passed":
            report["passed"].append(test_id)
        elif status == "skipped":
            report["skipped"][test_id] = e.get("detail", "")
        elif status == "failed":
            report["failed"][test_id] = e.get("detail", "")
        else:
            report["errors"][test_id] = e.get("detail", "")
    report["passed"].sort()
    timed = [(e.get("time", 0.0), i) for i, e in final.items()]
    report["slowest"] = [[i, t] for t, i in sorted(timed, reverse=True)[:10]]
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("module", help="CPython test module (test_socket) or a dotted module name")
    p.add_argument("--json", help="write the report here (default: stdout)")
    p.add_argument("--no-patch", action="store_true", help="baseline run without monkey_patch")
    p.add_argument("--test-timeout", type=float, default=60.0, help="per-test limit, seconds")
    p.add_argument("--run-timeout", type=float, default=1800.0, help="limit per worker process")
    p.add_argument("--skip-file", help="known-failures TOML: its environment/not_run ids skip")
    p.add_argument("-k", action="append", help="only test ids containing this (repeatable)")
    p.add_argument("--only", action="append", help="only this exact test id (repeatable)")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--events", help=argparse.SUPPRESS)
    p.add_argument("--after", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        worker(args)
    report = supervise(args)
    text = json.dumps(report, indent=1, sort_keys=True)
    if args.json:
        Path(args.json).write_text(text + "\n")
    else:
        print(text)
    counts = {k: len(report[k]) for k in ("passed", "failed", "errors", "skipped")}
    print(f"{args.module}: {counts} in {report['duration']}s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
