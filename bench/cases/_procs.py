"""Benchmark processes: pinned to a core, killed however the run ends, read with a deadline."""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


def pin(core: int) -> Any:
    """A ``preexec_fn`` that pins the child to ``core`` (what ``taskset -c`` does), if it can."""
    if (os.cpu_count() or 1) < 2:
        return None

    def pin() -> None:
        try:
            os.sched_setaffinity(0, {core})
        except OSError:
            pass  # a container confined to fewer cores: run unpinned rather than not at all

    return pin


@contextlib.contextmanager
def started(cmd: list[str], core: int, **popen: Any) -> Iterator[subprocess.Popen[str]]:
    """Run ``cmd`` pinned to ``core``; kill it on the way out, however the block ends."""
    proc = subprocess.Popen(cmd, preexec_fn=pin(core), text=True, **popen)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def read_line(proc: subprocess.Popen[str], stream: IO[str], timeout: float, what: str) -> str:
    """The next line ``proc`` writes on ``stream``, or an error naming ``what`` we waited for."""
    ready, _, _ = select.select([stream], [], [], timeout)
    line = stream.readline() if ready else ""
    if not line:
        proc.kill()
        status = proc.wait()
        raise RuntimeError(f"{what}: no answer after {timeout:g}s (exit status {status})")
    return line


def ready_port(proc: subprocess.Popen[str], timeout: float, what: str) -> int:
    """The port of ``proc``'s JSON ready line on stdout: its ``"port"`` (a peer's server)
    or the end of its ``"address"`` (a nettools command)."""
    ready = json.loads(read_line(proc, proc.stdout, timeout, what))
    return ready["port"] if "port" in ready else int(ready["address"].rsplit(":", 1)[1])


def ensure_program(tool: str, package: str) -> str:
    """The path of ``tool``, installing its Debian ``package`` first if it is missing."""
    path = shutil.which(tool)
    if path:
        return path
    apt = shutil.which("apt-get")
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    if apt is None or (sudo and shutil.which("sudo") is None):
        raise RuntimeError(f"{tool} is not installed; install it with: apt-get install {package}")
    print(f"installing {package} (for {tool})", file=sys.stderr, flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = [*sudo, apt, "install", "-y", "-q", package]
    if subprocess.run(install, env=env, capture_output=True).returncode != 0:
        # A fresh container may have no package lists yet.
        subprocess.run([*sudo, apt, "update", "-q"], env=env, capture_output=True)
        res = subprocess.run(install, env=env, capture_output=True, text=True)
        if res.returncode != 0:
            raise RuntimeError(f"apt-get install {package} failed: {res.stderr.strip()[-300:]}")
    path = shutil.which(tool)
    if path is None:
        raise RuntimeError(f"{package} installed but {tool} is still not on PATH")
    return path


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid``, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss_kib(pid: int, timeout: float = 3.0) -> int:
    """RSS once it stops moving: a server may still be finishing handler start-ups."""
    deadline = time.monotonic() + timeout
    last = rss_kib(pid)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = rss_kib(pid)
        if abs(now - last) <= 64:
            return now
        last = now
    return last


def open_fds(pid: int) -> int:
    """How many fds process ``pid`` has open."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def idle_cost(
    server_pid: int, client_cmd: list[str], conns: int, core: int, timeout: float, **popen: Any
) -> dict[str, Any]:
    """What ``conns`` idle connections cost the server: ``client_cmd`` (pinned to ``core``)
    opens them, prints a line once they are all set up, and holds them until its stdin
    ends.  The server's RSS growth per connection, and the rate of set-up as "ops/s"."""
    before = settled_rss_kib(server_pid)
    fds_before = open_fds(server_pid)
    start = time.perf_counter()
    with started(
        client_cmd, core, stdin=subprocess.PIPE, stdout=subprocess.PIPE, **popen
    ) as client:
        read_line(client, client.stdout, timeout, f"{conns} idle connections")
        setup_s = time.perf_counter() - start
        after = settled_rss_kib(server_pid)
        fds = open_fds(server_pid) - fds_before
        if fds < conns:
            raise RuntimeError(f"server holds {fds} new fds, expected {conns}")
        client.stdin.close()  # let it go: it exits at EOF
    return {
        "ops_per_s": conns / setup_s,
        "seconds": setup_s,
        "kib_per_conn": (after - before) / conns,
        "rss_before_mib": before / 1024,
        "rss_after_mib": after / 1024,
    }
