"""The example unit files in recipes/systemd: systemd-analyze accepts them, and
each service, started as systemd would start it (its sockets opened by
systemd-socket-activate and named as the .socket units say, its ExecStart, a
notify socket), takes its sockets and says READY=1 and STOPPING=1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers.paths import RECIPES

pytestmark = pytest.mark.timeout(60)

UNITS = RECIPES / "systemd"
NETTOOLS = "/usr/local/bin/nettools"


def unit(path: Path) -> dict[str, list[str]]:
    """``Key`` -> its values (a key may repeat), over all sections."""
    keys: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            keys.setdefault(key, []).append(value)
    return keys


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_systemd_analyze_accepts_the_units(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (make system-deps)")
    nettools = Path(sys.executable).with_name("nettools")
    for path in UNITS.iterdir():  # the binary where this environment has it
        (tmp_path / path.name).write_text(path.read_text().replace(NETTOOLS, str(nettools)))
    names = sorted(str(p) for p in tmp_path.iterdir())
    done = subprocess.run([analyze, "verify", *names], capture_output=True, text=True,
                          timeout=30)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr


@pytest.mark.parametrize("service", ["nettools-forward.service", "nettools-wschat.service"])
def test_each_service_runs_as_systemd_starts_it(service, tmp_path):
    activate = shutil.which("systemd-socket-activate")
    if activate is None:
        pytest.skip("systemd-socket-activate is not installed (make system-deps)")
    spec = unit(UNITS / service)
    assert spec["Type"] == ["notify"] and spec["WatchdogSec"]
    sockets = (spec.get("Sockets") or [service.replace(".service", ".socket")])[0].split()
    command = spec["ExecStart"][0].replace("0.0.0.0", "127.0.0.1")
    argv, names, ports = [activate], [], []
    for name in sockets:
        sock = unit(UNITS / name)
        (listen,) = sock["ListenStream"]
        port = free_port()  # the unit's port may be taken here: the same socket elsewhere
        command = command.replace(f"--port {listen.rpartition(':')[2]}", f"--port {port}")
        argv += ["-l", f"127.0.0.1:{port}"]
        names.append(sock.get("FileDescriptorName", ["unknown"])[0])
        ports.append(port)
    for metrics in ("127.0.0.1:9101", "127.0.0.1:9102"):
        command = command.replace(metrics, "127.0.0.1:0")
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    assert command.startswith(NETTOOLS + " ")
    argv += [f"--fdname={':'.join(names)}", "-E", f"NOTIFY_SOCKET={tmp_path / 'notify'}",
             sys.executable, "-m", "nettools", *command.split()[1:]]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:
        for _ in range(500):  # the first connection starts the service
            try:
                socket.create_connection(("127.0.0.1", ports[0]), timeout=10).close()
                break
            except ConnectionRefusedError:
                time.sleep(0.01)  # until systemd-socket-activate listens
        ready = [json.loads(proc.stdout.readline()) for _ in ports]
        assert sorted(r["address"] for r in ready) == sorted(f"127.0.0.1:{p}" for p in ports)
        assert all("metrics" in r for r in ready)
        first = notify.recv(4096).decode().splitlines()
        assert first[0] == "READY=1" and first[1].startswith("STATUS=")
        proc.send_signal(signal.SIGTERM)
        for _ in range(100):
            if notify.recv(4096).startswith(b"STOPPING=1"):
                break
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err
        # JSON logs and the summary: every line of ours is an object.
        assert all(json.loads(line) for line in err.splitlines() if line.startswith("{"))
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=10)
        notify.close()

