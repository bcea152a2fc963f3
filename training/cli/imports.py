"""`slt import`: bring in what users trained or extracted with the reference code
(TwoStream-SLT / SingleStream, FangyunWei/SLRT)."""

from __future__ import annotations

from pathlib import Path

import typer

from .common import echo_next

app = typer.Typer(help="Import models and data made with the reference code (TwoStream-SLT).")
S2T_PANEL = "Options for S2T and G2T checkpoints"  # `slt import slrt --help` shows them apart


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


@app.command("slrt")
def slrt(
    checkpoints: list[Path] = typer.Argument(
        ...,
        help="A reference checkpoint (ckpts/best.ckpt): S2G, S2T or G2T. TwoStream S2T: one or "
        "several networks (the reference's ensemble: joint, video, keypoint), imported together.",
        show_default=False,
    ),
    gloss2ids: Path = typer.Option(
        None,
        help="S2G, S2T: the S2G gloss table it was trained with (gloss2ids.pkl; SingleStream: "
        "gloss2ids_old.pkl). G2T reads the pretrained folder's.",
    ),
    dataset: Path = typer.Option(
        None,
        help="S2G, S2T: dataset root (train/dev splits); its gloss_vocab.json becomes the table's.",
    ),
    out: Path = typer.Option(..., help="The run folder to write (S2T: OUT/s2g and OUT/s2t)."),
    s2g: Path = typer.Option(
        None,
        help="S2T: the S2G checkpoint whose backbone made its features.",
        rich_help_panel=S2T_PANEL,
    ),
    pretrained: Path = typer.Option(
        None,
        help="S2T, G2T: the pruned mBART folder (config.json, tokenizer.json, map_ids.pkl, "
        "gloss2ids.pkl).",
        rich_help_panel=S2T_PANEL,
    ),
    text_lang: str = typer.Option(
        "de_DE", help="S2T, G2T: the spoken language token (tgt_lang).", rich_help_panel=S2T_PANEL
    ),
    sign_lang: str = typer.Option(
        "de_DGS", help="S2T, G2T: the sign language code (src_lang).", rich_help_panel=S2T_PANEL
    ),
    lang: str = typer.Option(
        "de",
        help="S2T, G2T: ISO code of the text (zh: scored on characters).",
        rich_help_panel=S2T_PANEL,
    ),
    gloss_feature: list[str] = typer.Option(
        None,
        help="TwoStream S2T, once per checkpoint in order: the head that feeds its translation, "
        "its config's gloss_feature_ensemble: fuse (joint), rgb (video) or keypoint. Default: "
        "fuse for one checkpoint; fuse, rgb, keypoint for three (the reference's ensemble order).",
        rich_help_panel=S2T_PANEL,
    ),
    fps: float = typer.Option(None, help="Frame rate of the clips (default: the dataset's)."),
) -> None:
    """Import a checkpoint trained with the reference code into run folders (loaded with
    weights_only=True; a gloss table of the wrong size is refused)."""
    from slt_serve.errors import SltError
    from slt_training.reference import importer
    from slt_training.reference.checkpoint import read_checkpoint

    checkpoint = checkpoints[0]
    kind = read_checkpoint(checkpoint).kind
    if len(checkpoints) > 1 and kind != "s2t":
        raise SltError(
            f"{checkpoint}: several checkpoints import only as a TwoStream S2T ensemble; "
            f"import this {kind} checkpoint alone"
        )
    if kind != "g2t" and (gloss2ids is None or dataset is None):
        raise SltError(f"{checkpoint}: an {kind} checkpoint needs --gloss2ids and --dataset")
    if kind == "g2t":
        if pretrained is None:
            raise SltError(f"{checkpoint}: a G2T checkpoint needs --pretrained FOLDER")
        options = importer.S2TImportOptions(text_lang, sign_lang, lang)
        run = importer.import_g2t(checkpoint, pretrained, out, options)
    elif kind == "s2t":
        if s2g is None or pretrained is None:
            raise SltError(
                f"{checkpoint}: an S2T checkpoint needs --s2g CKPT and --pretrained FOLDER"
            )
        options = importer.S2TImportOptions(text_lang, sign_lang, lang, fps=fps)
        _, run = importer.import_s2t(
            checkpoints, s2g, gloss2ids, pretrained, dataset, out, options, gloss_feature or None
        )
    else:
        run = importer.import_s2g(checkpoint, gloss2ids, dataset, out, fps)
    typer.echo(f"imported {', '.join(map(str, checkpoints))} into {run.run_dir}")
    echo_next(f"slt export model {run.run_dir} --out BUNDLE")
