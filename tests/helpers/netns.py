"""Run a Python script in a private network: its own loopback and resolver.

``run_in_private_network(code, resolv_conf)`` runs ``code`` in new user,
network and mount namespaces (``unshare``): the only interface is a loopback
of its own, so nothing the script does can leave the machine, and
``/etc/resolv.conf`` is replaced by ``resolv_conf`` for it alone -- a test can
answer the system resolver's DNS queries from a server on 127.0.0.1:53 (the
script is root in its namespaces, so it may bind port 53).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import pytest

from .paths import ROOT

#: Brings the namespace's loopback up (SIOCGIFFLAGS / SIOCSIFFLAGS, IFF_UP).
_LOOPBACK_UP = """\
import fcntl as _fcntl, socket as _socket, struct as _struct
with _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM) as _s:
    _flags = _struct.unpack("16sH", _fcntl.ioctl(_s, 0x8913, _struct.pack("16sH", b"lo", 0)))[1]
    _fcntl.ioctl(_s, 0x8914, _struct.pack("16sH", b"lo", _flags | 1))
"""


def run_in_private_network(
    code: str, resolv_conf: str, timeout: float = 60
) -> subprocess.CompletedProcess:
    """Run ``code`` (dedented) as described above; returns the finished process.
    Skips the test where the kernel allows no unprivileged namespaces."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed")
    probe = subprocess.run(
        [unshare, "--user", "--map-root-user", "--net", "--mount", "true"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.skip(f"no private namespaces here: {probe.stderr.decode().strip()}")
    with tempfile.TemporaryDirectory(prefix="netns-") as tmp:
        conf = os.path.join(tmp, "resolv.conf")
        with open(conf, "w") as f:
            f.write(resolv_conf)
        script = os.path.join(tmp, "script.py")
        with open(script, "w") as f:
            f.write(_LOOPBACK_UP + textwrap.dedent(code))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
        ))  # fmt: skip
        shell = 'mount --bind "$1" /etc/resolv.conf && exec "$2" "$3"'
        return subprocess.run(
            [unshare, "--user", "--map-root-user", "--net", "--mount",
             "sh", "-c", shell, "sh", conf, sys.executable, script],
            capture_output=True, text=True, timeout=timeout, env=env,
        )  # fmt: skip
