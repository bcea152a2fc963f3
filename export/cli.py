"""`slt export …`: trained models to ONNX for the torch-free runtime."""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.errors import SltError
from slt_serve.s2g import FEATURE_STRIDE
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
    typer.echo(_pose_summary(result))
    echo_next(f"slt data keypoints DATASET --pose {result.path}")


def _pose_summary(result) -> str:
    """What `slt export pose` wrote and how it compares with PyTorch."""
    h, w = result.spec.input_size
    return (
        f"wrote {result.path}: {result.megabytes:.1f} MB, {result.spec.num_keypoints} keypoints, "
        f"input {h}x{w}; parity with PyTorch: max |diff| {result.max_abs_diff:.2g} "
        f"(heatmap max {result.max_abs_value:.2g}), {result.seconds:.1f} s"
    )


@app.command("model")
def export_model(
    run_dir: Path = typer.Argument(
        ..., help="A G2T or S2T run folder (model.json), or an S2G run folder (input_spec.json)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Bundle folder to write."),
    quantize: str = typer.Option(
        None,
        help="int8: every graph (the recogniser's S3D as static int8 calibrated on "
        "--calibration clips or the run's dev clips; encoder/decoder MatMul weights dynamic "
        "int8); int8-text: encoder and decoder only, s2g.onnx float. Reports the change.",
    ),
    calibration: list[Path] = typer.Option(
        None,
        help="--quantize int8: videos, folders of videos or a list file to calibrate the "
        "recogniser's int8 ranges on (the first 8; default: the run's dev clips).",
    ),
    fps: float = typer.Option(
        None,
        help="Source frame rate the recognizer was trained at (default: saved with its S2G run).",
    ),
    pose: Path = typer.Option(
        None,
        help="pose.onnx (slt export pose) to include in a two_stream bundle, or 'mediapipe': "
        "the bundle runs MediaPipe Holistic (the pose extra) when served.",
    ),
    name: str = typer.Option(None, help="Bundle name in the manifest (default: the folder name)."),
    overwrite: bool = typer.Option(False, help="Replace an existing bundle at --out."),
    window_check: bool = typer.Option(
        True,
        help="The parity check also runs one whole serving window (window + context frames "
        "either side) through PyTorch and the bundle: minutes for a full-size TwoStream on a CPU.",
    ),
    calibrate_clips: int = typer.Option(
        200,
        help="Dev clips the bundle translates to calibrate its confidence thresholds "
        "(0: none; the runtime then uses its defaults).",
    ),
    window_frames: int = typer.Option(
        None,
        help="Frames per recogniser run when serving, a multiple of 4 (default 256); a longer "
        "clip runs in windows of this many, with the context frames either side that give "
        "one run's glosses (40 for SingleStream). Peak memory grows with window + 2 × context "
        "(at 224² and full width ~5.6 MB a frame; a 60 s clip peaks at 1.31 GiB at 64 with an int8 bundle; "
        "docs/export.md has a sizing table).",
    ),
) -> None:
    """Export a trained run as an ONNX bundle for the torch-free runtime, checked against PyTorch."""
    from slt_export.bundle import DEFAULT_WINDOW, ExportOptions, export_run, summary
    from slt_serve.batch import discover

    if calibrate_clips < 0:
        raise SltError(f"--calibrate-clips {calibrate_clips}: give 0 (none) or more")

    if window_frames is not None and (window_frames <= 0 or window_frames % FEATURE_STRIDE):
        raise SltError(
            f"--window-frames {window_frames}: give a positive multiple of {FEATURE_STRIDE}, e.g. 128"
        )
    if fps is not None and not 0 < fps <= 1000:
        raise SltError(f"--fps {fps}: the frame rate must be in (0, 1000]")
    options = ExportOptions(
        name=name,
        pose=pose,
        quantize=quantize,
        calibration=tuple(Path(p) for p in discover(calibration or [])),
        overwrite=overwrite,
        window_frames=DEFAULT_WINDOW if window_frames is None else window_frames,
        window_check=window_check,
    )
    result = export_run(run_dir, out, options, fps=fps, calibrate_clips=calibrate_clips)
    typer.echo(summary(result))
    if result.manifest.stage == "g2t":
        api = f"Translator.from_bundle('{out}').translate_gloss('GLOSS GLOSS')"
        echo_next(f'python -c "from slt_serve.translator import Translator; print({api}.text)"')
    else:
        echo_next(f"slt translate VIDEO.mp4 --bundle {out}   (or slt serve {out})")


def register(root: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add `slt export …`."""
    root.add_typer(app, name="export")
