"""The `slt` command.

The runtime's own commands live here; the training and export stacks add
theirs through the `slt_serve.commands` entry-point group, so `slt_serve`
never imports them and a serving-only install still has a working `slt`.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer

from slt_serve import __version__
from slt_serve.errors import SltError

app = typer.Typer(
    name="slt",
    help="Sign language translation: prepare data, train, evaluate, export and serve.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"slt-serve {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug messages."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )


def _register_plugins() -> None:
    for ep in entry_points(group="slt_serve.commands"):
        try:
            register = ep.load()
        except ImportError as e:  # a stack whose extra is not installed
            logging.getLogger(__name__).debug("commands %s unavailable: %s", ep.name, e)
            continue
        register(app)


_register_plugins()


def main() -> None:
    """Run the CLI; a `SltError` becomes one line on stderr and exit code 2.

    Usage errors, --help and exit codes are click's (standalone mode); anything
    else that escapes is a bug in slt-serve and keeps its traceback.
    """
    try:
        app()
    except SltError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
