"""An interactive Python console served over a socket, to poke at a running program.

::

    from nettools import backdoor, spawn
    spawn(backdoor.backdoor, ("127.0.0.1", 3000), locals={"app": app})

then ``nc 127.0.0.1 3000`` (or telnet).  Every client gets its own console in
its own greenthread; while it waits for input, or runs code that waits green
(``nettools.sleep``, green sockets), the rest of the program runs on.

Each session starts from a shallow copy of ``locals``: the objects are shared,
names a session binds stay its own.  What the session's code prints (stdout,
stderr, ``input()``) goes over that client's socket only: while sessions run,
``sys.stdin``/``stdout``/``stderr`` are routers that pick the stream of the
greenthread running now.  Greenthreads a session spawns print to the
program's own streams.

Anyone who can connect runs arbitrary code as this process, so a non-loopback
address is refused unless ``allow_remote=True``, and an abstract unix socket
(which has no permissions: any local user may connect) unless
``allow_abstract=True``; a unix socket file is created with mode 0600.  ``exit()``, ``raise
SystemExit`` or Ctrl-D end one session; kill the greenthread running
``backdoor_server`` to close the listener and every session.
"""

from __future__ import annotations

import code
import io
import ipaddress
import logging
import sys
from functools import partial
from typing import Any

from greenlet import GreenletExit, getcurrent, greenlet

from .green import socket
from .net import Server, format_address, is_abstract_unix, listen

__all__ = ["backdoor_server", "backdoor"]

log = logging.getLogger("nettools.backdoor")

#: Longest input line accepted; a longer one is cut into pieces.
MAX_LINE = 1 << 20

#: The standard console's three lines (eventlet's too, which tools wait for), the
#: second saying how to leave.
_BANNER = (
    "Python {version} on {platform}\n"
    "nettools backdoor: exit() or Ctrl-D ends this session.\n"
    "(InteractiveConsole)\n"
)

# ---------------------------------------------------------------- one session


class _SessionIO:
    """One client's end of a console: lines in, text out, over its socket."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._buf = bytearray()
        self._eof = False
        self.broken = False
        self.stdin = _Input(self)
        self.stdout = _Output(self)
        self.stderr = _Output(self)

    def write(self, text: str) -> None:
        if self.broken or not text:
            return
        try:
            self.conn.sendall(text.encode("utf-8", "replace"))
        except OSError:
            # The client is gone; the next read sees EOF and ends the session.
            self.broken = True

    def readline(self) -> str:
        """The next line with its newline; ``''`` at end of input."""
        buf = self._buf
        while True:
            end = buf.find(b"\n")
            if end >= 0:
                line = bytes(buf[: end + 1])
                del buf[: end + 1]
                return line.decode("utf-8", "replace")
            if self._eof or self.broken or len(buf) >= MAX_LINE:
                line = bytes(buf)
                buf.clear()
                return line.decode("utf-8", "replace")
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                self._eof = True
            buf += data


class _Output(io.TextIOBase):
    """A session's stdout/stderr: text goes to its client."""

    def __init__(self, session: _SessionIO) -> None:
        self._session = session

    @property
    def encoding(self) -> str:
        return "utf-8"

    def writable(self) -> bool:
        return True

    def write(self, s: str) -> int:
        self._session.write(s)
        return len(s)


class _Input(io.TextIOBase):
    """A session's stdin: lines typed by its client (for ``input()``, ``help()``, pdb)."""

    def __init__(self, session: _SessionIO) -> None:
        self._session = session

    @property
    def encoding(self) -> str:
        return "utf-8"

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        return self._session.readline()

    def read(self, size: int | None = -1) -> str:
        if size is not None and size >= 0:
            return self._session.readline()[:size]  # good enough for a console
        chunks = []
        while line := self._session.readline():
            chunks.append(line)
        return "".join(chunks)

    def close(self) -> None:
        pass  # site's exit() closes sys.stdin; the session ends through SystemExit


class _Exit:
    """``exit``/``quit`` for a session: end it without touching the process's stdin."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"Use {self.name}() or Ctrl-D (i.e. EOF) to end this session"

    def __call__(self, code: Any = None) -> None:
        raise SystemExit(code)


class _Console(code.InteractiveConsole):
    def __init__(self, session: _SessionIO, namespace: dict) -> None:
        super().__init__(namespace, filename="<backdoor>")
        self.session = session

    def write(self, data: str) -> None:
        self.session.write(data)

    def raw_input(self, prompt: str = "") -> str:
        self.session.write(prompt)
        line = self.session.readline()
        if not line:
            raise EOFError
        return line.rstrip("\r\n")

    def runcode(self, code: Any) -> None:
        try:
            exec(code, self.locals)
        except (SystemExit, GreenletExit, KeyboardInterrupt):
            # Ending the session, killing its greenthread and Ctrl-C on the
            # process must not be reported and swallowed like user errors.
            raise
        except BaseException:
            self.showtraceback()

    def run(self) -> None:
        """Our own loop rather than ``interact()``, which sets process-wide ``sys.ps1``."""
        self.write(_BANNER.format(version=sys.version, platform=sys.platform))
        more = False
        while True:
            try:
                line = self.raw_input("... " if more else ">>> ")
            except EOFError:
                self.write("\n")
                return
            try:
                more = self.push(line)
            except SystemExit:
                return


# ------------------------------------------------------- per-greenthread stdio

_sessions: dict[greenlet, _SessionIO] = {}
_STREAMS = ("stdin", "stdout", "stderr")


class _Discard(io.TextIOBase):
    """Stands in for a process stream that is ``None`` (no console attached)."""

    def write(self, s: str) -> int:
        return len(s)


class _Router:
    """Installed as ``sys.stdout`` (etc.) while sessions run: the stream of the
    greenthread running now, or the process's own stream for everyone else."""

    def __init__(self, name: str, target: Any) -> None:
        self._name = name
        self._target = target
        self._fallback = _Discard() if target is None else target

    def _stream(self) -> Any:
        session = _sessions.get(getcurrent())
        return self._fallback if session is None else getattr(session, self._name)

    def write(self, s: str) -> int:
        return self._stream().write(s)

    def writelines(self, lines: Any) -> None:
        self._stream().writelines(lines)

    def flush(self) -> None:
        self._stream().flush()

    def readline(self, *args: Any) -> str:
        return self._stream().readline(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream(), name)


def _attach(g: greenlet, session: _SessionIO) -> None:
    for name in _STREAMS:
        current = getattr(sys, name)
        if not isinstance(current, _Router):
            setattr(sys, name, _Router(name, current))
    _sessions[g] = session


def _detach(g: greenlet) -> None:
    _sessions.pop(g, None)
    if _sessions:
        return
    for name in _STREAMS:
        current = getattr(sys, name)
        # If someone wrapped our router meanwhile, leave it: it falls through when idle.
        if isinstance(current, _Router):
            setattr(sys, name, current._target)


def _serve_client(conn: Any, addr: Any, locals: dict | None = None) -> None:
    namespace = dict(locals) if locals else {}
    namespace.setdefault("__name__", "__backdoor__")
    namespace.setdefault("__doc__", None)
    namespace.setdefault("exit", _Exit("exit"))
    namespace.setdefault("quit", _Exit("quit"))
    session = _SessionIO(conn)
    g = getcurrent()
    log.info("backdoor session from %s started", addr or "unix socket peer")
    _attach(g, session)
    try:
        _Console(session, namespace).run()
    finally:
        _detach(g)
        log.info("backdoor session from %s ended", addr or "unix socket peer")


# ------------------------------------------------------------------ serving


def _is_loopback(family: int, address: Any) -> bool:
    if family == getattr(socket, "AF_UNIX", None):
        return True  # reachable from this machine only (see _refuse_abstract)
    host = address[0] if isinstance(address, tuple) else address
    if not isinstance(host, str):
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback


def _refuse_remote(
    family: int, address: Any, allow_remote: bool, allow_abstract: bool = False
) -> None:
    if family == getattr(socket, "AF_UNIX", None):
        _refuse_abstract(address, allow_abstract)
    if allow_remote or _is_loopback(family, address):
        return
    host = address[0] if isinstance(address, tuple) else address
    raise ValueError(
        f"refusing to serve a backdoor console on {host!r}, which is not a loopback "
        "address: anyone who can connect could run any code in this process; bind "
        "127.0.0.1 or ::1, or pass allow_remote=True if you really mean it"
    )


def _refuse_abstract(address: Any, allow_abstract: bool) -> None:
    if allow_abstract or not is_abstract_unix(address):
        return
    name = address.decode(errors="replace") if isinstance(address, bytes) else address
    raise ValueError(
        f"refusing to serve a backdoor console on the abstract unix socket {name!r}: "
        "it has no file permissions, so any local user could run any code in this "
        "process; give a socket file's path (created with mode 0600), or pass "
        "allow_abstract=True if you really mean it"
    )


def backdoor_server(
    sock: Any,
    locals: dict | None = None,
    *,
    allow_remote: bool = False,
    allow_abstract: bool = False,
    concurrency: int = 100,
) -> None:
    """Serve a Python console to every client that connects to ``sock`` (a
    listening green socket), each in its own greenthread, until this greenthread
    is killed; then the listener and every session are closed.

    Raises ``ValueError`` if ``sock`` is bound to a non-loopback address and
    ``allow_remote`` is false, or to an abstract unix socket (no permissions:
    every local user can connect) and ``allow_abstract`` is false.
    """
    _refuse_remote(sock.family, sock.getsockname(), allow_remote, allow_abstract)
    server = Server(
        sock, partial(_serve_client, locals=locals), concurrency, name="backdoor", nodelay=True
    )
    try:
        server.serve_forever()
    finally:
        server.stop(0)


def backdoor(
    addr: Any,
    locals: dict | None = None,
    *,
    allow_remote: bool = False,
    allow_abstract: bool = False,
) -> None:
    """Listen on ``addr`` (``(host, port)``, or a path for a unix socket) and run
    ``backdoor_server`` on it.  The address is logged (``nettools.backdoor``, INFO).

    A non-loopback host (including ``''`` and ``0.0.0.0``: every interface) raises
    ``ValueError`` before anything is bound, unless ``allow_remote`` is true; so
    does an abstract unix socket name (``"\\0name"``) unless ``allow_abstract``
    is.  A unix socket file is created with mode 0600: only this user may connect.
    """
    if isinstance(addr, (str, bytes)):
        _refuse_abstract(addr, allow_abstract)
        sock = listen(addr, socket.AF_UNIX, mode=0o600)
    else:
        host, port = addr[0], addr[1]
        if host:
            # Resolve once, so the address checked is the one bound.
            family, _, _, _, sockaddr = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)[0]
        else:
            family, sockaddr = socket.AF_INET, ("", port)
        _refuse_remote(family, sockaddr, allow_remote)
        sock = listen(sockaddr, family)
    try:
        log.info("backdoor listening on %s", format_address(sock.getsockname()))
        backdoor_server(sock, locals, allow_remote=allow_remote, allow_abstract=allow_abstract)
    finally:
        sock.close()
