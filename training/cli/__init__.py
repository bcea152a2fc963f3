"""`slt` commands of the training stack, one module a command group.

Thin wrappers: every command checks its arguments, calls a function that is
just as usable from Python, and prints what it did and what to run next.
"""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.doctor import DatasetState, provide_dataset_checks

from . import data, evaluate, imports, train


def dataset_state(root: Path) -> DatasetState:
    """`slt_training.data.check.dataset_state`, imported when a dataset is checked (pydantic
    models and all: `slt` starts faster without them)."""
    from slt_training.data.check import dataset_state as state

    return state(root)


def register(app: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add the training commands to `slt`, and
    the dataset root checks to `slt doctor DATASET`."""
    provide_dataset_checks(dataset_state)
    app.add_typer(data.app, name="data")
    app.add_typer(train.app, name="train")
    app.add_typer(imports.app, name="import")
    app.command("features")(train.features)
    app.command("prune-mbart")(train.prune_mbart)
    app.command("evaluate")(evaluate.evaluate)
