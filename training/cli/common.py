"""What every `slt` command of the training stack shares: argument types and messages."""

from __future__ import annotations

from pathlib import Path

import typer

DatasetArg = typer.Argument(..., help="Dataset root (holds train.jsonl, dev.jsonl, test.jsonl).")
ConfigArg = typer.Argument(..., help="Experiment YAML (see configs/, configs/custom.yaml).")
OverrideOpt = typer.Option(
    None, "--override", help="Change one config key, e.g. training.lr=1e-4 (repeatable)."
)
ResumeOpt = typer.Option(False, help="Continue the run in run_dir where it stopped.")
ImportOutOpt = typer.Option(..., "--out", "-o", help="Dataset root to write.")
OverwriteSplitsOpt = typer.Option(False, help="Replace existing split files.")


def echo_next(msg: str) -> None:
    """The command to run after this one: every command ends by saying it."""
    typer.secho(f"next: {msg}", fg=typer.colors.CYAN)


def warn_failed(failed, errors_file: Path) -> None:
    """One warning for the clips a per-clip stage (frames, keypoints) skipped, with an example."""
    if failed:
        typer.secho(
            f"warning: {len(failed)} clip(s) failed, e.g. {failed[0].name}: {failed[0].reason}; "
            f"all listed in {errors_file}",
            fg=typer.colors.YELLOW,
        )
