"""Running measurements in fresh subprocesses, pinned to one core."""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.one import EXIT_UNAVAILABLE, RESULT_PREFIX

REPO_ROOT = Path(__file__).resolve().parent.parent
# Core 1, not 0: core 0 takes most interrupts, and later server/load-generator cases
# want the pair (0, 1) with the measured side on 1.
BENCH_CORE = 1
STDERR_TAIL_LINES = 15


@dataclass
class Outcome:
    """What one subprocess run produced: a record, or why there is none."""

    status: str  # "ok" | "failed" | "unavailable"
    record: dict[str, Any] = field(default_factory=dict)
    error: str = ""


def pin_prefix() -> list[str]:
    """The command prefix that pins a run to BENCH_CORE, or [] when pinning is impossible."""
    if shutil.which("taskset") is None or (os.cpu_count() or 1) < 2:
        return []
    # A container may be confined to fewer cores than the machine has.
    if hasattr(os, "sched_getaffinity") and BENCH_CORE not in os.sched_getaffinity(0):
        return []
    return ["taskset", "-c", str(BENCH_CORE)]


def run_child(args: list[str], timeout: float) -> Outcome:
    """Run ``python -m bench.one ARGS`` pinned, and interpret its exit status and output."""
    cmd = [*pin_prefix(), sys.executable, "-m", "bench.one", *args]
    # Its own session, so that a timeout or Ctrl-C also ends whatever the run started
    # (load generators, servers) instead of leaving it to skew the next measurement.
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        _, stderr = proc.communicate()
        # The verdict goes last: the report shows an error's last line.
        return Outcome("failed", error=f"{_tail(stderr)}\ntimed out after {timeout:g}s")
    except BaseException:
        _kill_group(proc)
        raise
    if proc.returncode == EXIT_UNAVAILABLE:
        return Outcome("unavailable", error=_tail(stderr))
    results = [line for line in stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        return Outcome("failed", error=f"exit status {proc.returncode}\n{_tail(stderr)}")
    return Outcome("ok", record=json.loads(results[-1][len(RESULT_PREFIX):]))


def _kill_group(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def probe_peer(peer: str, timeout: float) -> Outcome:
    """Whether ``peer`` imports in a fresh interpreter; record holds its version."""
    return run_child(["--probe", peer], timeout)


def _tail(stderr: str | None) -> str:
    lines = (stderr or "").rstrip().splitlines()
    return "\n".join(lines[-STDERR_TAIL_LINES:])


def machine_facts() -> dict[str, Any]:
    """The facts a reader needs to compare two reports."""
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    prefix = pin_prefix()
    return {
        "cpu_model": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": affinity,
        "pinned_core": BENCH_CORE if prefix else None,
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "platform": platform.platform(),
        "loadavg": os.getloadavg() if hasattr(os, "getloadavg") else None,
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"
