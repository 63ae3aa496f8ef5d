"""The ``nettools`` command: parses, validates and calls a tool; no networking here.

Each command lives in its own module with a ``register(app)`` function.
Exit codes: 0 success, 1 runtime error, 2 usage error.
"""

from __future__ import annotations

import sys

import typer

from .._version import __version__
from . import chat, crawl, echo, feeds, fetch, forward, run, serve, static, wschat, zmq
from .common import LOG_FORMAT_HELP, setup_logging, with_common_options

app = typer.Typer(
    name="nettools",
    help="Green-thread network tools: ready-made servers and clients on one shared hub.\n\n"
    "Servers bind 127.0.0.1 by default and print one JSON line on stdout when ready; "
    "every option can also be set as NETTOOLS_<OPTION> (e.g. NETTOOLS_MAX_CONNS).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nettools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print version and exit."
    ),
    verbose: int = typer.Option(0, "--verbose", "-v", count=True, help="More log output (repeat)."),
    quiet: int = typer.Option(0, "--quiet", "-q", count=True, help="Less log output (repeat)."),
    log_format: str = typer.Option(None, "--log-format", metavar="[text|json]",
                                   help=LOG_FORMAT_HELP + " Every command takes it too."),
) -> None:
    """Green-thread network tools: ready-made servers and clients on one shared hub."""
    setup_logging(verbose, quiet, log_format)


@app.command("version")
def version_cmd() -> None:
    """Print the version.

    Example: nettools version
    """
    typer.echo(f"nettools {__version__}")


echo.register(app)
chat.register(app)
forward.register(app)
serve.register(app)
static.register(app)
wschat.register(app)
zmq.register(app)
fetch.register(app)
feeds.register(app)
crawl.register(app)
run.register(app)


def _every_command() -> list:
    """The registered commands, sub-commands of the groups included."""
    infos = list(app.registered_commands)
    for group in app.registered_groups:
        infos.extend(group.typer_instance.registered_commands)
    return infos


def _examples_epilog(infos: list) -> str:
    """The "Example:" line of each of ``infos``' commands, as a help epilog."""
    lines = []
    for info in infos:
        for line in (info.callback.__doc__ or "").splitlines():
            if line.strip().startswith("Example:"):
                lines.append("  " + line.strip()[len("Example:") :].strip())
    return "\b\nExamples:\n" + "\n".join(lines)


# The top-level help shows every command's example; a group's help, its commands'.
app.info.epilog = _examples_epilog(_every_command())
for _group in app.registered_groups:
    _group.typer_instance.info.epilog = _examples_epilog(
        _group.typer_instance.registered_commands)

for _info in _every_command():  # --log-format, --ready-json: declared in one place
    _info.callback = with_common_options(_info.callback)


# Typer re-exports BadParameter but not its base class, which every usage error shares.
_UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: a usage error is one line on stderr and exit 2."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=argv, prog_name="nettools", standalone_mode=False)
    except _UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # bare "nettools": show the help
            sys.stderr.write(exc.format_message() + "\n")
            sys.exit(2)
        where = exc.ctx.command_path if exc.ctx is not None else "nettools"
        message = " ".join(exc.format_message().split())
        sys.stderr.write(f"{where}: {message} (see '{where} --help')\n")
        sys.exit(2)
    except typer.Abort:
        sys.stderr.write("nettools: aborted\n")
        sys.exit(130)
    sys.exit(code if isinstance(code, int) else 0)
