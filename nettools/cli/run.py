"""``nettools run FILE``: many services from one TOML file, in one process."""

from __future__ import annotations

import json
import sys
import textwrap
from typing import Any

import typer

from ..tools.run import KINDS, ConfigError, Runner, StartError
from .common import EXIT_RUNTIME, EXIT_USAGE, address, fail, opt, runtime_errors


def _kinds_help() -> str:
    """One line per type of service: what it is and its settings."""
    lines = ["", "\b", "Types of service (type = ...) and their settings:"]
    for kind in KINDS.values():
        lines.append(f"  {kind.name}: {kind.summary}")
        lines.extend(textwrap.wrap(", ".join(kind.settings), 74, initial_indent="    ",
                                   subsequent_indent="    ", break_on_hyphens=False))
    return "\n    ".join(lines) + "\n"


def run(
    file: str = typer.Argument(..., metavar="FILE", envvar="NETTOOLS_FILE",
                               help="The TOML file that declares the services."),
    ready_file: str = opt(None, "--ready-file", metavar="PATH",
                          help="Also write the ready line (every service's addresses) to "
                               "this file as one JSON document, replaced whole on reload."),
    check: bool = opt(False, "--check",
                      help="Only read and check FILE: exit 0 if it can run, 2 if not."),
    metrics: Any = opt(None, "--metrics", parser=address,
                       help="Serve every service's Prometheus metrics at http://ADDR/metrics, "
                            "labelled with the service's type and name (the ready line "
                            "names it)."),
) -> None:
    """Run many services from one TOML file, in one process on one hub.

    Example: nettools run fixtures.toml --ready-file ready.json

    Each service is a table [services.NAME] with a type and that type's
    settings: the long options of its command without the dashes, with the
    same defaults (durations "30s", sizes "64K", lists as arrays); every
    service listens on "listen", by default 127.0.0.1:0.  Relative paths are
    relative to FILE's directory.  For example:

    \b
      [services.site]
      type = "static"
      root = "public"
      [services.db]
      type = "forward"
      rules = ["0:127.0.0.1:5432"]

    Each listener is announced with its ready line ({"event": "listening",
    "service": TYPE, "address": ..., "name": NAME}), then one line names them
    all: {"event": "ready", "services": {NAME: {"service": TYPE, "address":
    ..., "listeners": [...]}}}.  A service that fails to start stops the
    others: exit 1 naming it (2 if its settings are to blame).  A bad file:
    exit 2 with its line.

    SIGHUP reads FILE again: unchanged services keep running and keep their
    connections, removed ones drain and stop, changed ones restart, new ones
    start; stderr says which ({"event": "reloaded", ...}) and stdout gets the
    new ready line.  A file that does not check out changes nothing.
    SIGINT/SIGTERM stop every service (each drains for its drain-timeout) and
    print one summary per service on stderr; SIGUSR1 prints the counts so far.
    """
    runner = Runner(file, ready_file=ready_file, metrics=metrics)
    with runtime_errors("run"):
        try:
            if check:
                config = runner.check()
                services = {name: spec.kind.name for name, spec in config.services.items()}
                sys.stdout.write(json.dumps({"event": "checked", "file": file,
                                             "services": services}) + "\n")  # fmt: skip
                return
            code = runner.run()
        except ConfigError as exc:
            fail("run", str(exc), EXIT_USAGE)
        except StartError as exc:
            fail("run", str(exc), EXIT_USAGE if exc.usage else EXIT_RUNTIME)
    raise typer.Exit(code)


if run.__doc__:  # None under python -OO
    run.__doc__ = run.__doc__.rstrip() + "\n" + _kinds_help()


def register(app: typer.Typer) -> None:
    app.command("run")(run)
