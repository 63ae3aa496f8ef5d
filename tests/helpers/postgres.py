"""A throwaway PostgreSQL cluster from Debian's binaries, on a unix socket.

``PostgresCluster(tmpdir)`` runs initdb and pg_ctl in ``tmpdir`` (as the
``nobody`` user when the tests run as root: PostgreSQL refuses to run as root),
listening on no TCP port at all: clients connect through the socket directory.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path


def postgres_bindir() -> str | None:
    """Debian's PostgreSQL bin directory (the newest version), or None."""
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda d: int(d.split("/")[-2]))
    return dirs[-1] if dirs and os.path.exists(os.path.join(dirs[-1], "initdb")) else None


class PostgresCluster:
    """A cluster in ``root``: ``start()``, ``conninfo(dbname)``, ``stop()``."""

    def __init__(self, root: Path) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("PostgreSQL is not installed (make system-deps installs it)")
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.sockdir = root / "sock"
        self.user = "nobody" if os.getuid() == 0 else None

    @classmethod
    @contextlib.contextmanager
    def temporary(cls) -> Iterator[PostgresCluster]:
        """A started cluster in a fresh directory (outside pytest's root-only
        tmp tree, which the ``nobody`` user could not enter), removed after."""
        root = Path(tempfile.mkdtemp(prefix="nettools-pg-"))
        cluster = cls(root)
        try:
            cluster.start()
            yield cluster
        finally:
            with contextlib.suppress(Exception):
                cluster.stop()
            shutil.rmtree(root, ignore_errors=True)

    def _run(self, *argv: str) -> None:
        cmd = [os.path.join(self.bindir, argv[0]), *argv[1:]]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def start(self) -> PostgresCluster:
        self.sockdir.mkdir(parents=True)
        if self.user is not None:
            shutil.chown(self.root, self.user)
            shutil.chown(self.sockdir, self.user)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-c listen_addresses='' -c unix_socket_directories={self.sockdir} -c fsync=off"
        # -l: the server keeps no pipe of ours open (we wait for pg_ctl to end).
        log = str(self.root / "server.log")
        self._run("pg_ctl", "-D", str(self.data), "-l", log, "-o", opts, "-w", "-t", "60", "start")
        return self

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")

    def conninfo(self, dbname: str = "postgres") -> str:
        return f"host={self.sockdir} user=postgres dbname={dbname}"
