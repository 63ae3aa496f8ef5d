"""Conventions every ``nettools`` command shares.

* ``opt(...)``: an option whose value can also come from ``NETTOOLS_<OPTION>``.
* Durations (``500ms``, ``30s``, ``5m``), sizes (``64K``) and addresses
  (``host:port``, ``[v6]:port``, ``unix:/path``) parse through ``nettools.cli.args``;
  a bad value is a usage error (exit 2, one line).
* ``runtime_errors(command)``: an ``OSError`` and friends become one line on
  stderr and exit 1 -- never a traceback.
* ``serve_until_stopped(...)``: announce the listeners, run until SIGINT/SIGTERM,
  drain, print the summary, exit 0; ``serve_on(...)`` listens first.
* ``LISTEN``, ``READY_FILE``, ``SLOW_TIMEOUT``...: options several commands share.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import ssl
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer

from ..green import socket
from ..green import ssl as gssl
from ..tools.plumbing.service import (
    Service,
    Stats,
    announce,
    call_on_stop_signals,
    format_address,
    raise_fd_limit,
)
from .args import Address, parse_address, parse_duration, parse_size

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

#: Extra fds a server keeps for itself beyond its connection limit.
FD_HEADROOM = 64


def opt(default: Any, *flags: str, help: str, **kw: Any) -> Any:
    """A Typer option also settable through ``NETTOOLS_<LONG_FLAG>``."""
    long = next(f for f in flags if f.startswith("--"))
    envvar = "NETTOOLS_" + long[2:].replace("-", "_").upper()
    parser = kw.get("parser")
    if parser is not None and "metavar" not in kw:
        kw["metavar"] = _METAVARS.get(parser, "VALUE")
    return typer.Option(default, *flags, help=help, envvar=envvar, **kw)


def option_parser(parse: Callable[[str], Any]) -> Callable[[Any], Any]:
    """A Typer ``parser=`` from ``parse(text)``, whose ValueError becomes a usage error."""

    def parser(value: Any) -> Any:
        if not isinstance(value, str):
            return value  # already parsed (a default)
        try:
            return parse(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parser


duration = option_parser(parse_duration)
size = option_parser(parse_size)
address = option_parser(parse_address)
_METAVARS = {duration: "DURATION", size: "SIZE", address: "ADDR"}


# Options several commands declare alike: one declaration each.
LISTEN = opt("127.0.0.1:0", "--listen", "-l", parser=address,
             help="Address: host:port, [v6]:port or unix:/path (port 0 picks one).")
READY_FILE = opt(None, "--ready-file", metavar="PATH",
                 help="Also write the ready line to this file.")
# The slow-client policy of the servers that queue output per client.
SLOW_TIMEOUT = opt("5s", "--slow-timeout", parser=duration,
                   help="Disconnect a client whose queue stays full this long "
                        "(off: never, it just misses messages).")
SEND_BUFFER = opt("64K", "--send-buffer", parser=size,
                  help="Kernel send buffer per client (0: the system's default).")


def queue_size_option(items: str = "Messages") -> Any:
    """``--queue-size``: ``items`` queued per client before it counts as slow."""
    return opt(256, "--queue-size", min=1,
               help=f"{items} queued per client before it counts as slow.")


def drain_timeout_option(until: str) -> Any:
    """``--drain-timeout``: on SIGINT/SIGTERM, wait this long ``until``."""
    return opt("10s", "--drain-timeout", parser=duration,
               help=f"On SIGINT/SIGTERM, wait this long {until}.")


def setup_logging(verbose: int, quiet: int) -> None:
    """Logs go to stderr; ``-v`` for more, ``-q`` for less."""
    level = logging.INFO - 10 * verbose + 10 * quiet
    logging.basicConfig(
        level=max(logging.DEBUG, min(level, logging.CRITICAL)),
        format="nettools: %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )


def fail(command: str, message: str, code: int = EXIT_RUNTIME) -> None:
    """Print ``nettools COMMAND: MESSAGE`` on stderr and exit with ``code``."""
    sys.stderr.write(f"nettools {command}: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def describe_os_error(exc: OSError) -> str:
    if exc.filename is not None:  # a file (e.g. --ready-file), not a socket
        return f"{exc.strerror or exc}: {exc.filename}"
    text = exc.strerror or str(exc)
    if exc.errno == errno.EADDRINUSE:
        text = "address already in use"
    elif exc.errno == errno.EACCES:
        text = "permission denied (ports below 1024 need privileges)"
    return text


def usage_error(command: str, message: object) -> NoReturn:
    """A usage error found after parsing: one line pointing at the help, exit 2."""
    fail(command, f"{message} (see 'nettools {command} --help')", EXIT_USAGE)
    raise AssertionError("fail() exits")


def server_tls(command: str, cert: str | None, key: str | None) -> Any:
    """The green server TLS context of ``--tls-cert``/``--tls-key``, or None without a cert.

    A key without a cert, or files that do not load, are usage errors (exit 2).
    """
    if cert is None:
        if key is not None:
            usage_error(command, "--tls-key needs --tls-cert")
        return None
    ctx = gssl.SSLContext(gssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        text = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        usage_error(command, f"cannot load --tls-cert/--tls-key: {text[:1].lower()}{text[1:]}")
    return ctx


@contextlib.contextmanager
def runtime_errors(command: str) -> Iterator[None]:
    """Turn runtime failures into one line and exit code 1."""
    try:
        yield
    except typer.Exit:
        raise
    except OSError as exc:
        fail(command, describe_os_error(exc))
    except (ValueError, RuntimeError) as exc:
        fail(command, str(exc))


def listen_on(
    command: str, addr: Address, *, udp: bool = False, backlog: int = 1024
) -> Any:
    """A green listening (or bound UDP) socket on ``addr``; failures exit 1 with one line."""
    kind = socket.SOCK_DGRAM if udp else socket.SOCK_STREAM
    sock = socket.socket(addr.family, kind)
    try:
        if addr.path is not None:
            with contextlib.suppress(FileNotFoundError):
                if _is_stale_unix_socket(addr.path):
                    os.unlink(addr.path)
        else:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr.sockaddr)
        if not udp:
            sock.listen(backlog)
    except OSError as exc:
        sock.close()
        fail(command, f"cannot listen on {addr}: {describe_os_error(exc)}")
    return sock


def _is_stale_unix_socket(path: str) -> bool:
    """A socket file nobody listens on any more (left by a crashed run)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except ConnectionRefusedError:
        return True
    except OSError:
        return False
    finally:
        probe.close()
    return False


def bound_address(sock: Any) -> str:
    return format_address(sock.getsockname(), sock.family)


def serve_until_stopped(
    service: str,
    stats: Stats,
    listeners: list[Any],
    stoppers: list[Callable[[float | None], Any]],
    *,
    drain_timeout: float | None,
    ready_file: str | None,
    ready_extras: list[dict[str, Any]] | None = None,
) -> None:
    """Announce each listener (``ready_extras``: more fields for each one's ready
    line), run until SIGINT/SIGTERM, drain, print the summary."""
    svc = Service(service, stats, drain_timeout)
    svc.stoppers.extend(stoppers)
    # Before the ready line: a script may send SIGTERM as soon as it has seen it.
    svc.install_signal_handlers()
    extras = ready_extras or [{} for _ in listeners]
    for sock, extra in zip(listeners, extras, strict=True):
        announce(service, bound_address(sock), ready_file, **extra)
    unix_paths = [sock.getsockname() for sock in listeners if sock.family == socket.AF_UNIX]
    code = svc.run()
    for path in unix_paths:  # a clean exit leaves no socket file behind
        with contextlib.suppress(OSError, ValueError):  # ValueError: an abstract name
            os.unlink(path)
    raise typer.Exit(code)


def prepare_limits(max_conns: int) -> None:
    raise_fd_limit(max_conns + FD_HEADROOM)


def serve_on(
    command: str,
    addr: Address,
    start: Callable[[Any], Callable[[float | None], Any]],
    stats: Stats,
    *,
    max_conns: int | None,
    drain_timeout: float | None,
    ready_file: str | None,
    udp: bool = False,
    service: str | None = None,
) -> None:
    """Listen on ``addr`` (room for ``max_conns`` fds; None: no check), start a
    server there (``start(sock)`` returns its stop function), and serve until
    SIGINT/SIGTERM as ``serve_until_stopped`` does."""
    if max_conns is not None:
        prepare_limits(max_conns)
    sock = listen_on(command, addr, udp=udp)
    stop = start(sock)
    serve_until_stopped(service or command, stats, [sock], [stop],
                        drain_timeout=drain_timeout, ready_file=ready_file)


@contextlib.contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[None]:
    """While in the block, SIGINT/SIGTERM call ``stop`` in a greenthread: the polite
    stop of a client tool (no new requests, in-flight ones finish or are cut, results
    still written)."""
    old = call_on_stop_signals(stop)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)
