"""`slt import`: bring in what users trained or extracted with the reference code
(TwoStream-SLT / SingleStream, FangyunWei/SLRT)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import echo_next

app = typer.Typer(help="Import models and data made with the reference code (TwoStream-SLT).")


@app.command("slrt-keypoints")
def slrt_keypoints(
    pkl: Path = typer.Argument(..., help="The reference's <ds>-keypoints.pkl."),
    dataset: Path = typer.Argument(..., help="Dataset root; writes DATASET/keypoints/<name>.npz."),
    width: int = typer.Option(..., help="Width of the frames the pixels refer to (PHOENIX: 210)."),
    height: int = typer.Option(..., help="Height of those frames (PHOENIX: 260)."),
    fps: float = typer.Option(..., help="Frame rate of the clips (PHOENIX-2014T: 25)."),
    overwrite: bool = typer.Option(False, help="Replace .npz files that exist."),
) -> None:
    """Convert the reference's keypoint pickle (read with an allow-list, never blindly)
    into the per-clip keypoint cache that TwoStream training and features read."""
    from slt_training.reference.keypoints import import_keypoints

    report = import_keypoints(pkl, dataset, width, height, fps, overwrite)
    typer.echo(
        f"wrote {report.written} clip(s) to {report.out_dir}, kept {report.skipped} existing"
    )
    echo_next(f"slt train s2g CONFIG (a TwoStream config reading {dataset})")
