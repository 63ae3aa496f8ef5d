"""The ``nettools`` command: parses, validates and calls a tool; no networking here."""

from __future__ import annotations

import typer

from ._version import __version__

app = typer.Typer(
    name="nettools",
    help="Green-thread network tools: ready-made servers and clients on one shared hub.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"nettools {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False,
        "--version",
        callback=_show_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    """Green-thread network tools: ready-made servers and clients on one shared hub."""


@app.command("version")
def version_cmd() -> None:
    """Print the version.  Example: nettools version"""
    typer.echo(f"nettools {__version__}")


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
