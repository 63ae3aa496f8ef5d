"""Conventions every ``nettools`` command shares.

* ``opt(...)``: an option whose value can also come from ``NETTOOLS_<OPTION>``.
* Durations (``500ms``, ``30s``, ``5m``), sizes (``64K``) and addresses
  (``host:port``, ``[v6]:port``, ``unix:/path``) parse through ``nettools.cli.args``;
  a bad value is a usage error (exit 2, one line).
* ``runtime_errors(command)``: an ``OSError`` and friends become one line on
  stderr and exit 1 -- never a traceback.
* ``LISTEN``, ``READY_FILE``, ``SLOW_TIMEOUT``...: options several commands share.

Listening, running a service until SIGINT/SIGTERM and its summary are the
tools' job (``nettools.tools.plumbing.service``); a command only calls them.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import sys
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import typer

from ..tools.plumbing import logs, service
from .args import parse_address, parse_duration, parse_size

EXIT_OK, EXIT_RUNTIME, EXIT_USAGE = 0, 1, 2

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
METRICS = opt(None, "--metrics", parser=address,
              help="Serve Prometheus metrics at http://ADDR/metrics (host:port, port 0 "
                   "picks one; the ready line names it).")
# The slow-client policy of the servers that queue output per client.
SLOW_TIMEOUT = opt("5s", "--slow-timeout", parser=duration,
                   help="Disconnect a client that reads nothing this long while its "
                        "queue is full (off: never, it just misses messages).")
SEND_BUFFER = opt("64K", "--send-buffer", parser=size,
                  help="Kernel send buffer per client (0: the system's default).")


def help_parts(**parts: str) -> Callable[[Callable], Callable]:
    """A decorator that puts each of ``parts`` into a command's help where it
    says ``{name}``: text that several commands share, written once."""

    def fill(command: Callable) -> Callable:
        if command.__doc__:  # None under python -OO
            for name, text in parts.items():
                command.__doc__ = command.__doc__.replace("{" + name + "}", text)
        return command

    return fill


def queue_size_option(items: str = "Messages") -> Any:
    """``--queue-size``: ``items`` queued per client before it counts as slow."""
    return opt(256, "--queue-size", min=1,
               help=f"{items} queued per client before it counts as slow.")


def drain_timeout_option(until: str) -> Any:
    """``--drain-timeout``: on SIGINT/SIGTERM, wait this long ``until``."""
    return opt("10s", "--drain-timeout", parser=duration,
               help=f"On SIGINT/SIGTERM, wait this long {until}.")


def setup_logging(verbose: int, quiet: int, log_format: str | None = None) -> None:
    """Logs go to stderr; ``-v`` for more, ``-q`` for less; ``log_format``
    ``json`` for one JSON object per line (see ``nettools.tools.plumbing.logs``)."""
    level = logging.INFO - 10 * verbose + 10 * quiet
    handler = logging.StreamHandler(sys.stderr)
    logging.basicConfig(
        level=max(logging.DEBUG, min(level, logging.CRITICAL)), handlers=[handler], force=True
    )
    use_log_format(log_format or _log_setup["format"], _log_setup["service"])


_log_setup = {"format": "text", "service": "nettools"}


def use_log_format(log_format: str, service: str | None = None) -> None:
    """Format the root logger's lines as ``text`` or ``json`` (for ``service``)."""
    if log_format not in logs.LOG_FORMATS:
        raise typer.BadParameter(f"{log_format!r} is not one of: {', '.join(logs.LOG_FORMATS)}")
    _log_setup["format"] = log_format
    if service is not None:
        _log_setup["service"] = service
    formatter = (logs.JsonFormatter(_log_setup["service"]) if log_format == "json"
                 else logs.text_formatter())  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)


def json_logs() -> bool:
    """Whether logs are JSON lines (``--log-format json``)."""
    return _log_setup["format"] == "json"


LOG_FORMAT_HELP = "Log lines as text (the default) or json (one object per line)."


def _apply_log_format(ctx: typer.Context, value: str | None) -> str | None:
    service = "-".join(ctx.command_path.split()[1:]) or "nettools"
    use_log_format(value or _log_setup["format"], service)
    return value


def _apply_ready_json(value: bool) -> bool:
    service.ready_json(value)
    return value


def with_common_options(command: Callable) -> Callable:
    """``command`` with the options every command takes, declared in this one
    place: ``--log-format text|json`` (it takes effect as it is parsed, and
    names the command as the logs' service: ``zmq proxy`` -> ``zmq-proxy``),
    and for a server (a command with ``--ready-file``) ``--ready-json``."""
    sig = inspect.signature(command, eval_str=True)
    log_format = typer.Option(None, "--log-format", envvar="NETTOOLS_LOG_FORMAT", is_eager=True,
                              callback=_apply_log_format, metavar="[text|json]",
                              help=LOG_FORMAT_HELP)  # fmt: skip
    added = [inspect.Parameter("log_format", inspect.Parameter.KEYWORD_ONLY,
                               default=log_format, annotation=str | None)]  # fmt: skip
    if "ready_file" in sig.parameters:
        ready = typer.Option(False, "--ready-json", envvar="NETTOOLS_READY_JSON",
                             callback=_apply_ready_json,
                             help="Print the JSON ready line on stdout even on a terminal "
                                  "(elsewhere it always is).")  # fmt: skip
        added.append(inspect.Parameter("ready_json", inspect.Parameter.KEYWORD_ONLY,
                                       default=ready, annotation=bool))  # fmt: skip
    names = {p.name for p in added}

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        return command(*args, **{k: v for k, v in kwargs.items() if k not in names})

    run.__signature__ = sig.replace(parameters=[*sig.parameters.values(), *added])
    return run


def fail(command: str, message: str, code: int = EXIT_RUNTIME) -> None:
    """Print ``nettools COMMAND: MESSAGE`` on stderr and exit with ``code``."""
    sys.stderr.write(f"nettools {command}: {message}\n")
    sys.stderr.flush()
    raise typer.Exit(code)


def usage_error(command: str, message: object) -> NoReturn:
    """A usage error found after parsing: one line pointing at the help, exit 2."""
    fail(command, f"{message} (see 'nettools {command} --help')", EXIT_USAGE)
    raise AssertionError("fail() exits")


@contextlib.contextmanager
def runtime_errors(command: str) -> Iterator[None]:
    """Turn runtime failures into one line and exit code 1."""
    try:
        yield
    except typer.Exit:
        raise
    except OSError as exc:
        fail(command, service.describe_os_error(exc))
    except (ValueError, RuntimeError) as exc:
        fail(command, str(exc))


def server_tls(command: str, cert: str | None, key: str | None) -> Any:
    """The green server TLS context of ``--tls-cert``/``--tls-key``, or None without a cert.

    A key without a cert, or files that do not load, are usage errors (exit 2).
    """
    try:
        return service.server_tls(cert, key)
    except ValueError as exc:
        usage_error(command, exc)
