"""`slt export …`: trained models to ONNX for the torch-free runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.errors import SltError
from slt_training.cli.common import echo_next

app = typer.Typer(
    help="Export trained models to ONNX for the torch-free runtime.", no_args_is_help=True
)


@app.command("pose")
def export_pose(
    checkpoint: Path = typer.Argument(
        ..., help="mmpose HRNet checkpoint (.pth, e.g. hrnet_w48_coco_wholebody_384x288_dark)."
    ),
    out: Path = typer.Option(Path("pose.onnx"), "--out", "-o", help="ONNX file to write."),
    input_size: str = typer.Option(
        None, help="Crop HEIGHTxWIDTH, e.g. 384x288 (default: the checkpoint's, else 384x288)."
    ),
    blur_kernel: int = typer.Option(11, help="DARK refinement blur kernel (odd; 0: off)."),
) -> None:
    """Export an HRNet whole-body checkpoint to pose.onnx, checked against PyTorch."""
    from slt_export.pose import export_pose as run_export

    size = None
    if input_size is not None:
        try:
            size = tuple(int(v) for v in input_size.lower().split("x"))
        except ValueError:
            size = ()
        if len(size) != 2:
            raise SltError(f"--input-size {input_size}: give HEIGHTxWIDTH, e.g. 384x288")
    if blur_kernel < 0 or (blur_kernel and blur_kernel % 2 == 0):
        raise SltError(f"--blur-kernel {blur_kernel}: must be odd, or 0 for no refinement")
    result = run_export(checkpoint, out, size, blur_kernel)
    h, w = result.spec.input_size
    typer.echo(
        f"wrote {result.path}: {result.megabytes:.1f} MB, {result.spec.num_keypoints} keypoints, "
        f"input {h}x{w}; parity with PyTorch: max |diff| {result.max_abs_diff:.2g} "
        f"(heatmap max {result.max_abs_value:.2g}), {result.seconds:.1f} s"
    )
    echo_next(f"slt data keypoints DATASET --pose {result.path}")


def register(root: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add `slt export …` to `slt`."""
    root.add_typer(app, name="export")
