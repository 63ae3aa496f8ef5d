"""CPython's own test suites for the modules nettools patches, run under monkey_patch().

This is how we know nettools is a drop-in: ``test.test_socket``, ``test_ssl``,
``test_threading``, ... run in fresh interpreters that called
``nettools.monkey_patch()`` first (``tests/patcher/cpython/run_patched.py``).  A module
passes when its failures are exactly the ``[nettools]`` entries of
``tests/patcher/cpython/known_failures.toml``: an unlisted failure fails, and so does a
listed one that now passes (the list must stay tight).  A failure that also
happens without nettools on this machine (checked by re-running just those
tests unpatched) is the environment's, and is only reported.

The modules run in parallel subprocesses (``NETTOOLS_CPYTHON_JOBS``, default 2)
started by a session fixture, slowest first.  Select or deselect the whole file
with ``-m cpython`` / ``-m "not cpython"``.  Set ``NETTOOLS_CPYTHON_REPORTS`` to a
directory to keep each module's JSON report there.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent / "cpython"
RUNNER = HERE / "run_patched.py"
KNOWN_FILE = HERE / "known_failures.toml"

#: The patched modules' CPython test modules, slowest first (they start first).
MODULES = [
    "test_socket",
    "test_subprocess",
    "test_threading",
    "test_asyncio.test_events",
    "test_selectors",
    "test_ssl",
    "test_logging",
    "test_queue",
    "test_ftplib",
    "test_imaplib",
    "test_urllib2_localnet",
    "test_poplib",
    "test_select",
    "test_thread",
    "test_timeout",
    "test_smtplib",
    "test_socketserver",
    "test_httplib",
    "test_httpservers",
    "test_xmlrpc",
    "test_wsgiref",
    "test_threading_local",
]
#: Per CPython test, enforced inside the worker (a hang becomes an error with stacks).
TEST_TIMEOUT = 60
#: Per module run; a supervisor still running then is killed with its workers.
RUN_TIMEOUT = 600
#: The CPython version whose test suite known_failures.toml was triaged against.
SUITE_VERSION = (3, 11)
JOBS = max(1, int(os.environ.get("NETTOOLS_CPYTHON_JOBS", "2")))

pytestmark = [pytest.mark.cpython, pytest.mark.timeout(RUN_TIMEOUT + 300)]


def _known() -> dict[str, dict[str, str]]:
    import tomllib  # 3.11+, as is the suite the list was written for

    with open(KNOWN_FILE, "rb") as f:
        return tomllib.load(f)


class _Runs:
    """The module runs, started in the background; ``report(module)`` waits for one."""

    def __init__(self, modules: list[str]) -> None:
        self._procs: set[subprocess.Popen] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._pool = ThreadPoolExecutor(max_workers=JOBS, thread_name_prefix="cpython-suite")
        self._futures: dict[str, Future] = {m: self._pool.submit(self.run, m) for m in modules}

    def report(self, module: str) -> dict[str, Any]:
        return self._futures[module].result()

    def run(self, module: str, patched: bool = True, only: list[str] | None = None) -> dict:
        """Run ``run_patched.py`` for ``module`` and return its JSON report."""
        with tempfile.TemporaryDirectory(prefix="cpython-suite-") as tmp:
            out = Path(tmp) / "report.json"
            cmd = [sys.executable, str(RUNNER), module, "--json", str(out)]
            cmd += ["--skip-file", str(KNOWN_FILE), "--test-timeout", str(TEST_TIMEOUT)]
            cmd += [] if patched else ["--no-patch"]
            for test_id in only or ():
                cmd += ["--only", test_id]
            with self._lock:
                if self._closed:
                    raise RuntimeError("the session is over")
                # Its own session: on a timeout the workers go down with it.
                proc = subprocess.Popen(
                    cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                    stdin=subprocess.DEVNULL, start_new_session=True,
                )  # fmt: skip
                self._procs.add(proc)
            try:
                _, stderr = proc.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                _kill(proc)
                _, stderr = proc.communicate()
                raise AssertionError(
                    f"{module}: no report after {RUN_TIMEOUT}s\n{stderr[-3000:]}"
                ) from None
            finally:
                with self._lock:
                    self._procs.discard(proc)
            if proc.returncode != 0 or not out.exists():
                raise AssertionError(
                    f"run_patched.py {module} exited {proc.returncode}\n{stderr[-3000:]}"
                )
            return json.loads(out.read_text())

    def close(self) -> None:
        with self._lock:
            self._closed = True
            procs = list(self._procs)
        for proc in procs:
            _kill(proc)
        self._pool.shutdown(wait=True, cancel_futures=True)


def _kill(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@pytest.fixture(scope="session")
def cpython_runs(request: pytest.FixtureRequest) -> Iterator[_Runs]:
    """Starts every selected module's run at once (JOBS at a time)."""
    if sys.version_info[:2] != SUITE_VERSION:
        # Test names and known failures differ between CPython versions.
        pytest.skip(f"known_failures.toml is triaged for CPython {SUITE_VERSION}'s suite")
    if importlib.util.find_spec("test.support") is None:
        pytest.skip("this Python has no stdlib 'test' package")
    selected = {
        item.callspec.params["module"]
        for item in request.session.items
        if getattr(item, "originalname", None) == "test_cpython_module"
        and hasattr(item, "callspec")
    }
    runs = _Runs([m for m in MODULES if m in selected])
    yield runs
    runs.close()


def _summary(report: dict[str, Any]) -> str:
    counts = ", ".join(f"{len(report[k])} {k}" for k in ("passed", "failed", "errors", "skipped"))
    return f"{report['module']}: {counts} in {report['duration']}s"


def _listing(ids: list[str], details: dict[str, str], limit: int = 1500) -> str:
    return "\n".join(f"--- {i}\n{details.get(i, '')[-limit:]}" for i in ids)


@pytest.mark.parametrize("module", MODULES)
def test_cpython_module(module: str, cpython_runs: _Runs) -> None:
    """The module's tests pass under monkey_patch(), but for its known failures."""
    report = cpython_runs.report(module)
    known = {
        k: v for k, v in _known().get("nettools", {}).items() if k.startswith(f"test.{module}.")
    }
    broken = {**report["failed"], **report["errors"]}
    print(_summary(report))

    unexpected = sorted(set(broken) - set(known))
    environment: list[str] = []
    if unexpected:
        # Failing without nettools as well: this machine's doing, not ours.
        baseline = cpython_runs.run(module, patched=False, only=unexpected)
        also = set(baseline["failed"]) | set(baseline["errors"])
        environment = [t for t in unexpected if t in also]
        unexpected = [t for t in unexpected if t not in also]
    now_passing = sorted(t for t in known if t in report["passed"])
    seen = set(broken) | set(report["passed"]) | set(report["skipped"])
    stale = sorted(t for t in known if t not in seen)

    if environment:
        print(f"also failing without nettools (environment): {environment}")
    problems = []
    if unexpected:
        problems.append(
            f"{len(unexpected)} unexpected failures under monkey_patch():\n"
            + _listing(unexpected, broken)
        )
    if now_passing:
        problems.append(
            "known failures that now pass (remove them from known_failures.toml):\n"
            + "\n".join(now_passing)
        )
    if stale:
        problems.append(
            "known_failures.toml names tests this run did not see:\n" + "\n".join(stale)
        )
    reports = os.environ.get("NETTOOLS_CPYTHON_REPORTS")
    if reports:
        Path(reports).mkdir(parents=True, exist_ok=True)
        Path(reports, f"{module}.json").write_text(json.dumps(report, indent=1, sort_keys=True))
    assert not problems, _summary(report) + "\n\n" + "\n\n".join(problems)
