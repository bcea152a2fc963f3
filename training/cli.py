"""`slt` commands of the training stack: `slt data …`, `slt evaluate`.

Thin wrappers: every command checks its arguments, calls a function that is
just as usable from Python, and prints what it did and what to run next.
"""

from __future__ import annotations

from pathlib import Path

import typer

data_app = typer.Typer(
    help="Prepare datasets: import annotations, derive glosses, build the vocabulary, "
    "cache frames, generate a synthetic corpus, check a dataset root.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add the training commands to `slt`."""
    app.add_typer(data_app, name="data")


DatasetArg = typer.Argument(..., help="Dataset root (holds train.jsonl, dev.jsonl, test.jsonl).")


def _echo_next(msg: str) -> None:
    typer.secho(f"next: {msg}", fg=typer.colors.CYAN)


_ = Path  # used by the commands below
