"""`slt` commands of the training stack: `slt data …`, `slt evaluate`.

Thin wrappers: every command checks its arguments, calls a function that is
just as usable from Python, and prints what it did and what to run next.
"""

from __future__ import annotations

from pathlib import Path

import typer

from slt_serve.errors import SltError

data_app = typer.Typer(
    help="Prepare datasets: import annotations, derive glosses, build the vocabulary, "
    "cache frames, generate a synthetic corpus, check a dataset root.",
    no_args_is_help=True,
)


export_app = typer.Typer(
    help="Export trained models to ONNX for the torch-free runtime.", no_args_is_help=True
)

train_app = typer.Typer(
    help="Train a stage from a YAML config (configs/): s2g, …", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    """Entry point (group `slt_serve.commands`): add the training commands to `slt`."""
    app.add_typer(data_app, name="data")
    app.add_typer(export_app, name="export")
    app.add_typer(train_app, name="train")
    app.command("features")(features)
    app.command("evaluate")(evaluate)
    app.command("prune-mbart")(prune_mbart)


DatasetArg = typer.Argument(..., help="Dataset root (holds train.jsonl, dev.jsonl, test.jsonl).")


def _echo_next(msg: str) -> None:
    typer.secho(f"next: {msg}", fg=typer.colors.CYAN)


def _warn_failed(failed, errors_file: Path) -> None:
    """One warning for the clips a per-clip stage (frames, keypoints) skipped, with an example."""
    if failed:
        typer.secho(
            f"warning: {len(failed)} clip(s) failed, e.g. {failed[0].name}: {failed[0].reason}; "
            f"all listed in {errors_file}",
            fg=typer.colors.YELLOW,
        )


# --- import / export -------------------------------------------------------------------


@data_app.command("import-slrt")
def import_slrt(
    files: list[Path] = typer.Argument(..., help="TwoStream/SLRT annotation files (gzip pickles)."),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset root to write."),
    split: str = typer.Option(None, help="Split of a single file (default: from its name)."),
    video_dir: str = typer.Option(
        None, help="Folder (relative to --out) holding each clip's video or frame folder by name."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing split files."),
) -> None:
    """Import TwoStream-SLT / SLRT annotation files (loaded safely: no arbitrary unpickling)."""
    from slt_training.data.importers import split_from_filename, write_dataset
    from slt_training.data.slrt_pickle import clips_from_slrt, load_slrt_pickle

    if split and len(files) > 1:
        raise SltError("--split names the split of a single file; pass one file at a time")
    splits = {
        split or split_from_filename(f): clips_from_slrt(load_slrt_pickle(f), video_dir)
        for f in files
    }
    write_dataset(out, splits, overwrite)
    _echo_written(out, splits)
    _echo_next(f"slt data vocab {out}")


@data_app.command("import-phoenix")
def import_phoenix(
    files: list[Path] = typer.Argument(
        ..., help="PHOENIX `|`-separated corpus CSVs (one per split)."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset root to write."),
    video_dir: str = typer.Option(
        None,
        help="Frames folder relative to --out, with {split} for the split, "
        "e.g. 'features/fullFrame-210x260px/{split}'.",
    ),
    overwrite: bool = typer.Option(False, help="Replace existing split files."),
) -> None:
    """Import PHOENIX-2014 / PHOENIX-2014T corpus CSV files."""
    from slt_training.data.importers import read_phoenix_csv, split_from_filename, write_dataset

    splits = {}
    for f in files:
        s = split_from_filename(f)
        splits[s] = read_phoenix_csv(f, video_dir.format(split=s) if video_dir else None)
    write_dataset(out, splits, overwrite)
    _echo_written(out, splits)
    _echo_next(f"slt data vocab {out}")


@data_app.command("import-folder")
def import_folder(
    videos: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    table: Path = typer.Option(
        ..., "--table", "-t", help="CSV/TSV with columns name, text [, gloss, signer, split]."
    ),
    out: Path = typer.Option(..., "--out", "-o", help="Dataset root to write."),
    dev_fraction: float = typer.Option(0.1, help="Share of clips for dev (when no split column)."),
    test_fraction: float = typer.Option(
        0.1, help="Share of clips for test (when no split column)."
    ),
    seed: int = typer.Option(0, help="Seed of the split assignment."),
    skip_missing: bool = typer.Option(
        False, help="Import the rows whose video exists, skip the rest."
    ),
    overwrite: bool = typer.Option(False, help="Replace existing split files."),
) -> None:
    """Import your own videos and a table of sentences; splits by signer when none is given."""
    from slt_training.data.importers import import_folder as run_import
    from slt_training.data.importers import write_dataset

    result = run_import(videos, table, out, dev_fraction, test_fraction, seed, skip_missing)
    write_dataset(out, result.splits, overwrite)
    _echo_written(out, result.splits)
    how = {
        "table": "the table's split column",
        "signer": "signer (test signers unseen)",
        "clip": "clip, at random (fewer than 3 signers: test signers are seen in training)",
    }
    typer.echo(f"split by {how[result.split_by]}")
    if result.videos_without_row:
        typer.echo(f"{result.videos_without_row} video(s) in {videos} have no row in the table")
    has_gloss = any(c.gloss for clips in result.splits.values() for c in clips)
    _echo_next(
        f"slt data vocab {out}" if has_gloss else f"slt data gloss-from-text {out} --lang vi"
    )


@data_app.command("export-slrt")
def export_slrt(
    dataset: Path = DatasetArg,
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the reference-format files."),
    prefix: str = typer.Option("dataset", help="File names are <prefix>.<split>."),
) -> None:
    """Write the annotations back in the TwoStream/SLRT format, to compare with the reference code."""
    from slt_training.data.annotations import available_splits, load_split
    from slt_training.data.slrt_pickle import write_slrt_pickle

    for split in available_splits(dataset):
        path = out / f"{prefix}.{split}"
        write_slrt_pickle(path, load_split(dataset, split))
        typer.echo(f"wrote {path}")


def _echo_written(out: Path, splits: dict) -> None:
    for split, clips in splits.items():
        typer.echo(f"wrote {out / (split + '.jsonl')}: {len(clips)} clips")


# --- glosses from text -------------------------------------------------------------------


@data_app.command("gloss-from-text")
def gloss_from_text(
    dataset: Path = typer.Argument(
        ..., help="Dataset root (train/dev/test.jsonl) or a single .jsonl annotation file."
    ),
    lang: str = typer.Option(
        ..., help="Language of the text: vi, de, zh have rules; any other code: plain words."
    ),
    splits: str = typer.Option(
        "all", help="Splits to gloss, e.g. 'train,dev'; 'all': those present."
    ),
    stopwords: Path = typer.Option(
        None, help="Extra words to drop, one a line (added to the built-in list)."
    ),
    lemmas: Path = typer.Option(None, help="'word<TAB>lemma' lines, replaced before the rules."),
    reorder: bool = typer.Option(
        True, help="Sign-language word order (vi: modals/aspect/negation at the clause end)."
    ),
    segmenter: str = typer.Option("auto", help="vi: auto, underthesea or pyvi."),
    overwrite: bool = typer.Option(
        False, help="Replace human glosses (kept in 'gloss_human' for --compare)."
    ),
    compare: bool = typer.Option(
        False, help="Write nothing: score derived vs human glosses (WER, bag-of-glosses P/R/F1)."
    ),
    examples: int = typer.Option(5, help="With --compare: example lines to show."),
) -> None:
    """Derive pseudo-glosses from each clip's text (for corpora without gloss annotation)."""
    from slt_training.data import pseudogloss as pg
    from slt_training.data.annotations import parse_splits

    options = pg.GlossOptions(
        lang=lang,
        stopwords_file=stopwords,
        lemmas_file=lemmas,
        reorder=reorder,
        segmenter=segmenter,
    )
    split_list = [] if dataset.is_file() else parse_splits(splits, dataset)
    if compare:
        result, shown = pg.compare_dataset(dataset, split_list, options)
        _print_gloss_comparison(result, shown[: max(examples, 0)])
        return
    done = pg.gloss_from_text(dataset, split_list, options, overwrite=overwrite)
    for name, n in done.per_file.items():
        typer.echo(
            f"wrote {name}: {n} clips glossed from text ({done.vocabulary} distinct glosses)"
        )
    if done.human_kept:
        typer.echo(f"{done.human_kept} human gloss(es) kept in 'gloss_human'")
    if done.no_text:
        typer.secho(f"warning: {done.no_text} clip(s) have no text", fg=typer.colors.YELLOW)
    _echo_next(f"slt data vocab {dataset.parent if dataset.is_file() else dataset}")


def _print_gloss_comparison(result, shown) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "sentences", "WER %", "precision", "recall", "F1", title="derived vs human glosses"
    )
    table.add_row(
        str(result.n_sentences),
        f"{result.wer:.1f}",
        f"{result.precision:.3f}",
        f"{result.recall:.3f}",
        f"{result.f1:.3f}",
    )
    Console().print(table)
    for ex in shown:
        typer.echo(f"{ex.name}: {ex.text}\n  human:   {ex.human}\n  derived: {ex.derived}")


# --- synthetic corpus --------------------------------------------------------------------


@data_app.command("synth")
def synth(
    out: Path = typer.Argument(..., help="Folder to write (new or empty; or a run to resume)."),
    preset: str = typer.Option(
        "cpu", help="Sizes: 'cpu' (1500 clips, 48 glosses, 128²) or 'gpu' (5000, 300, 256²)."
    ),
    clips: int = typer.Option(None, help="Clips over all splits (80/10/10). Default: from --preset."),
    glosses: int = typer.Option(None, help="Lexicon size, 16..304. Default: from --preset."),
    size: int = typer.Option(None, help="Frame width = height in pixels, even. Default: from --preset."),
    signers: int = typer.Option(None, help="Distinct signers. Default: 6."),
    seed: int = typer.Option(None, help="Random seed: same seed + settings, same corpus. Default: 0."),
    fps: float = typer.Option(None, help="Frame rate of the videos. Default: 25."),
    lang: str = typer.Option(None, help="Text language: en or vi. Default: en."),
    layout: str = typer.Option(
        None,
        help="'splits': dataset root (videos, keypoints, train/dev/test.jsonl); 'folder': "
        "videos + sentences.csv (name,text,signer; no glosses) + ground_truth.jsonl. Default: splits.",
    ),
    workers: int = typer.Option(None, help="Processes rendering clips. Default: min(4, CPU cores)."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Generate a synthetic signed corpus: a drawn signer, one distinct sign per gloss,
    sentences whose gloss order differs from the text, ground-truth 133-point keypoints.

    Rerunning with the same settings resumes (finished clips are skipped).
    """
    import os

    from slt_training.data.synth.corpus import generate, options_for

    opts = options_for(
        preset,
        clips=clips,
        glosses=glosses,
        size=size,
        signers=signers,
        seed=seed,
        fps=fps,
        lang=lang,
        layout=layout,
    )
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers < 1:
        raise SltError(f"--workers {workers}: need at least 1")
    result = generate(out, opts, workers=workers, progress=progress)
    per_split = ", ".join(f"{s} {n}" for s, n in result.clips.items())
    typer.echo(
        f"wrote {out}: {sum(result.clips.values())} clips ({per_split}), {opts.glosses} glosses, "
        f"{opts.signers} signers, {opts.size}x{opts.size} @ {opts.fps:g} fps, text in {opts.lang}"
    )
    typer.echo(
        f"rendered {result.rendered} clip(s), {result.frames} frames in {result.seconds:.1f} s"
        + (f"; {result.skipped} already there" if result.skipped else "")
    )
    if opts.layout == "folder":
        _echo_next(
            f"slt data import-folder {out / 'videos'} --table {out / 'sentences.csv'} "
            f"--out DATASET, then slt data gloss-from-text DATASET --lang {opts.lang}"
        )
    else:
        _echo_next(f"slt data vocab {out}")


# --- vocabulary and checks ---------------------------------------------------------------


@data_app.command("vocab")
def vocab(
    dataset: Path = DatasetArg,
    min_freq: int = typer.Option(1, help="Keep glosses seen at least this often in train."),
) -> None:
    """Build gloss_vocab.json from the train split and print dev/test OOV rates."""
    from rich.console import Console
    from rich.table import Table

    from slt_training.data.annotations import available_splits, load_split
    from slt_training.data.check import VOCAB_FILE
    from slt_training.data.vocab import build_vocab, coverage

    vocab = build_vocab(load_split(dataset, "train"), min_freq)
    vocab.save(dataset / VOCAB_FILE)
    table = Table("split", "clips", "gloss tokens", "OOV tokens", "OOV rate %", "OOV types")
    for split in available_splits(dataset):
        c = coverage(vocab, load_split(dataset, split))
        table.add_row(
            split,
            str(c.clips),
            str(c.tokens),
            str(c.oov_tokens),
            f"{c.oov_rate:.2f}",
            str(c.oov_types),
        )
    typer.echo(
        f"wrote {dataset / VOCAB_FILE}: {len(vocab)} entries ({len(vocab) - 3} glosses + 3 specials)"
    )
    Console().print(table)
    _echo_next(f"slt data frames {dataset}")


@data_app.command("frames")
def frames(
    dataset: Path = DatasetArg,
    size: int = typer.Option(256, help="Side of the square frames, in pixels (even)."),
    splits: str = typer.Option("all", help="Splits to cache, e.g. 'train,dev'; 'all': present."),
    workers: int = typer.Option(None, help="Clips encoded in parallel (default: CPU cores)."),
    crf: int = typer.Option(17, help="x264 quality, 0-51, lower is better and larger."),
    overwrite: bool = typer.Option(False, help="Re-cache clips already in the cache."),
) -> None:
    """Decode every clip once into DATASET/frames/SIZE/ (compact H.264, fast to read); resumable."""
    from slt_training.data.frames import cache_frames

    report = cache_frames(dataset, splits, size=size, workers=workers, overwrite=overwrite, crf=crf)
    typer.echo(
        f"{report.cache_dir}: {report.cached} cached, {report.skipped} already there, "
        f"{len(report.failed)} failed ({report.seconds:.1f} s)"
    )
    if report.filled:
        typer.echo(f"filled in num_frames of {report.filled} clip(s) in the annotations")
    if report.mismatched:
        name, annotated, cached = report.mismatched[0]
        typer.secho(
            f"warning: {len(report.mismatched)} clip(s) have another frame count in the "
            f"annotations (e.g. {name}: {annotated} annotated, {cached} decoded); left as annotated",
            fg=typer.colors.YELLOW,
        )
    _warn_failed(report.failed, report.cache_dir / "errors.jsonl")
    _echo_next(f"slt data check {dataset}")


@data_app.command("check")
def check(
    dataset: Path = DatasetArg,
    probe: bool = typer.Option(True, help="Open every video to verify its frame count."),
    workers: int = typer.Option(4, help="Videos probed in parallel."),
) -> None:
    """Validate a dataset root: annotations, videos present, frame counts, vocabulary coverage."""
    from rich.console import Console
    from rich.table import Table

    from slt_training.data.check import check_dataset

    report = check_dataset(dataset, probe=probe, workers=workers)
    table = Table("", *(r.split for r in report.splits), title=str(report.root))
    rows = {
        "clips": lambda r: str(r.clips),
        "signers": lambda r: str(r.signers),
        "with gloss": lambda r: str(r.with_gloss),
        "with text": lambda r: str(r.with_text),
        "videos missing": lambda r: str(r.videos_missing),
        "frames min/median/max": lambda r: (
            "-" if r.frames_min is None else f"{r.frames_min}/{r.frames_median:g}/{r.frames_max}"
        ),
        "frames unknown": lambda r: str(r.frames_unknown),
        "frame count mismatch": lambda r: str(r.frames_mismatch) if probe else "not probed",
        "gloss OOV %": lambda r: "-" if r.oov_rate is None else f"{r.oov_rate:.2f}",
    }
    for label, cell in rows.items():
        table.add_row(label, *(cell(r) for r in report.splits))
    Console().print(table)
    for w in report.warnings:
        typer.secho(f"warning: {w}", fg=typer.colors.YELLOW)
    for p in report.problems:
        typer.secho(f"problem: {p}", fg=typer.colors.RED)
    if not report.ok:
        raise typer.Exit(1)
    typer.secho("dataset OK", fg=typer.colors.GREEN)


# --- translation ------------------------------------------------------------------------


def prune_mbart(
    pretrained: Path = typer.Argument(
        ...,
        help="Pretrained mBART folder (mbart-large-cc25 layout: config.json, weights, "
        "tokenizer.json).",
    ),
    dataset: Path = typer.Option(..., "--dataset", help="Dataset root whose text is kept."),
    out: Path = typer.Option(..., "--out", help="Folder for the pruned model and tokenizer."),
    lang: str = typer.Option("de_DE", help="mBART language token of the text (de_DE, zh_CN, …)."),
    splits: str = typer.Option(
        "train,dev,test", help="Splits whose text and glosses are kept (those present are read)."
    ),
    gloss_tokens: bool = typer.Option(
        True, "--gloss-tokens/--no-gloss-tokens", help="Add one token per gloss."
    ),
) -> None:
    """Shrink an mBART's vocabulary to the tokens a corpus uses and add gloss tokens."""
    from slt_training.data.annotations import SPLITS, available_splits, load_split
    from slt_training.text.mbart import check_pretrained_folder
    from slt_training.text.prune import VOCAB_MAP_FILE
    from slt_training.text.prune import prune_mbart as prune

    wanted = [s.strip() for s in splits.split(",") if s.strip()]
    if not wanted or set(wanted) - set(SPLITS):
        raise SltError(f"--splits {splits!r}: give a comma-separated subset of {SPLITS}")
    check_pretrained_folder(pretrained)
    present = [s for s in available_splits(dataset) if s in wanted]
    if not present:
        raise SltError(f"{dataset}: none of the splits {wanted} is there")
    clips = [c for s in present for c in load_split(dataset, s)]
    texts, glosses = [c.text for c in clips], [c.glosses for c in clips]
    r = prune(pretrained, texts, glosses, out, lang, gloss_tokens)
    typer.echo(
        f"read {len(clips)} clips ({', '.join(present)}); vocabulary {r.old_vocab} → {r.kept} "
        f"tokens + {r.glosses} glosses; parameters {r.parameters_before / 1e6:.1f} M → "
        f"{r.parameters_after / 1e6:.1f} M"
    )
    typer.echo(f"wrote {out}: config.json, model.safetensors, tokenizer.json, {VOCAB_MAP_FILE}")
    _echo_next(f"set translation.pretrained: {out} in your config, then slt train g2t CONFIG")


# --- keypoints and the pose model --------------------------------------------------------


@data_app.command("keypoints")
def keypoints(
    dataset: Path = DatasetArg,
    pose: Path = typer.Option(None, "--pose", help="pose.onnx from `slt export pose`."),
    from_pose: Path = typer.Option(
        None, "--from-pose", help="Folder of <clip name>.pose files (MediaPipe, OpenPose)."
    ),
    splits: str = typer.Option("all", help="Splits to do, e.g. 'train,dev'; 'all': present."),
    workers: int = typer.Option(
        None, help="Clips in parallel (default: 1 with --pose, up to 4 with --from-pose)."
    ),
    batch_size: int = typer.Option(16, help="Frames per pose.onnx run."),
    overwrite: bool = typer.Option(False, help="Redo clips whose .npz exists."),
) -> None:
    """Write DATASET/keypoints/<clip>.npz (133 COCO-WholeBody points per frame) for every clip,
    with pose.onnx or from existing .pose files; resumable, failures listed in errors.jsonl."""
    from slt_training.data.keypoints import extract_keypoints

    report = extract_keypoints(
        dataset, pose, from_pose, splits, workers, batch_size, overwrite, progress=True
    )
    typer.echo(
        f"{report.out_dir}: {report.written} written ({report.frames} frames), "
        f"{report.skipped} already there, {len(report.failed)} failed ({report.seconds:.1f} s)"
    )
    if report.frame_mismatches:
        typer.secho(
            f"warning: {report.frame_mismatches} clip(s) have another frame count than "
            "their num_frames",
            fg=typer.colors.YELLOW,
        )
    _warn_failed(report.failed, report.out_dir / "errors.jsonl")
    _echo_next(f"slt data check {dataset}")


@export_app.command("pose")
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
    _echo_next(f"slt data keypoints DATASET --pose {result.path}")


# --- S2G training and features -----------------------------------------------------------

ConfigArg = typer.Argument(..., help="Experiment YAML (see configs/, configs/custom.yaml).")
OverrideOpt = typer.Option(
    None, "--override", help="Change one config key, e.g. training.lr=1e-4 (repeatable)."
)


@train_app.command("s2g")
def train_s2g(
    config: Path = ConfigArg,
    resume: bool = typer.Option(False, help="Continue the run in run_dir where it stopped."),
    override: list[str] = OverrideOpt,
) -> None:
    """Train sign-to-gloss recognition (SingleStream or TwoStream, CTC); dev WER every epoch.

    Several GPUs or nodes: `accelerate launch -m slt_serve.cli train s2g CONFIG`.
    """
    import logging

    from slt_training.config import S2GConfig, load_config
    from slt_training.stages import s2g

    cfg = load_config(config, S2GConfig, override or [])
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    result = s2g.train(cfg, resume=resume)
    if not result.scores:  # not the main process
        return
    scores = ", ".join(f"{split} WER {s['wer']:.2f}" for split, s in result.scores.items())
    beam = cfg.training.eval_beam_size
    typer.echo(f"{result.run_dir}: best epoch {result.best_epoch}, {scores} (beam {beam})")
    typer.echo(f"best checkpoint {result.best_checkpoint}; scores in {result.run_dir}/metrics.json")
    if result.stopped_early:
        typer.echo("stopped by training.max_minutes / max_steps; --resume continues it")
    _echo_next(f"slt features {config} --split train,dev,test")


def features(
    config: Path = ConfigArg,
    split: str = typer.Option("train,dev,test", "--split", help="Splits, e.g. train,dev,test."),
    out: Path = typer.Option(None, help="Output folder (default: RUN_DIR/features)."),
    batch_size: int = typer.Option(1, help="Clips per forward pass (1: exact, no padding)."),
    override: list[str] = OverrideOpt,
) -> None:
    """Write per-clip visual features and gloss log-probs of the best S2G checkpoint."""
    from slt_training.config import S2GConfig, load_config
    from slt_training.data.annotations import parse_splits
    from slt_training.stages.features import extract

    parse_splits(split)
    if batch_size < 1:
        raise SltError(f"--batch-size {batch_size}: need at least 1")
    cfg = load_config(config, S2GConfig, override or [])
    report = extract(cfg, split, out, batch_size)
    for name, n in report.clips.items():
        typer.echo(f"wrote {report.out_dir / name}: {n} clips, {report.steps[name]} feature steps")
    typer.echo(f"from {report.checkpoint} (sha256 {report.checkpoint_sha256[:12]}…)")
    _echo_next("train the translation stage on these features (S2T)")


# --- evaluate ----------------------------------------------------------------------------


def evaluate(
    hyp: Path = typer.Option(..., "--hyp", help="Hypotheses: plain text (one a line) or JSONL."),
    ref: Path = typer.Option(..., "--ref", help="References: plain text or JSONL (by `name`)."),
    task: str = typer.Option(
        "text", help="What to score: 'text' (BLEU, ROUGE-L) or 'gloss' (WER)."
    ),
    lang: str = typer.Option(
        None,
        help="Language of the text (de, zh, vi, en, ...); zh is scored on characters. "
        "Required for --task text.",
    ),
    phoenix_cleanup: bool = typer.Option(
        None,
        "--phoenix-cleanup/--no-phoenix-cleanup",
        help="Apply the PHOENIX-2014T gloss clean-up to both sides before WER "
        "(default: on for --task gloss --lang de, off otherwise).",
    ),
    json_out: Path = typer.Option(None, "--json", help="Also write the scores to this JSON file."),
) -> None:
    """Score hypotheses against references as TwoStream-SLT reports: WER, BLEU-1..4, ROUGE-L.

    FILEs are plain text (aligned by line) or JSONL clips (matched by `name`,
    scoring their `gloss` or `text` field).
    """
    from dataclasses import asdict

    from slt_serve.fileio import write_json
    from slt_training import metrics

    metrics.check_task(task)
    if task == "text" and lang is None:
        raise SltError(
            "--task text needs --lang (e.g. de, zh, vi, en): Chinese is scored on characters"
        )
    lang = metrics.check_lang(lang) if lang is not None else None
    if task == "text" and phoenix_cleanup:
        raise SltError("--phoenix-cleanup applies to glosses; use it with --task gloss")
    if phoenix_cleanup is None:
        phoenix_cleanup = metrics.default_phoenix_cleanup(task, lang)
    hyps, refs = metrics.load_pairs(hyp, ref, task)
    if task == "gloss":
        scores = metrics.evaluate_gloss(hyps, refs, phoenix_cleanup=phoenix_cleanup)
    else:
        scores = metrics.evaluate_text(hyps, refs, lang)
    typer.echo(f"{task}: {hyp} vs {ref}")
    _print_scores(scores)
    if json_out is not None:
        write_json(
            json_out,
            {
                "task": task,
                "lang": lang,
                "hyp": str(hyp),
                "ref": str(ref),
                "scores": asdict(scores),
            },
        )
        typer.echo(f"wrote {json_out}")
    else:
        _echo_next("add --json FILE to keep these scores")


def _print_scores(scores) -> None:
    from dataclasses import asdict

    from rich.console import Console
    from rich.table import Table

    table = Table("metric", "value")
    for name, value in asdict(scores).items():
        if name != "signature":
            table.add_row(
                name,
                f"{value:.{3 if name == 'bp' else 2}f}" if isinstance(value, float) else str(value),
            )
    Console().print(table)
    if getattr(scores, "signature", None):
        on = " on characters" if scores.level == "char" else ""
        typer.echo(f"sacrebleu{on}: {scores.signature}")


@data_app.command("overlay")
def overlay(
    dataset: Path = DatasetArg,
    clip: str = typer.Argument(..., help="Clip name, as in the annotations."),
    out: Path = typer.Option(..., "--out", "-o", help="Output .mp4 (whole clip) or .png (first frame)."),
) -> None:
    """Draw a clip's keypoints on its video, to eyeball them."""
    from slt_serve.overlay import write_overlay
    from slt_serve.video import probe, read_frames
    from slt_training.data.annotations import available_splits, load_split
    from slt_training.data.keypoints import keypoints_path
    from slt_training.data.pose_files import read_npz

    found = [c for s in available_splits(dataset) for c in load_split(dataset, s) if c.name == clip]
    if not found or not found[0].video:
        raise SltError(f"{dataset}: no clip named {clip!r} with a video in the annotations")
    kp_file = keypoints_path(dataset, clip)
    if not kp_file.is_file():
        raise SltError(f"{kp_file}: no keypoints for this clip; run `slt data keypoints {dataset}` first")
    seq = read_npz(kp_file)
    video = dataset / found[0].video
    n = write_overlay(out, read_frames(video), seq.keypoints, probe(video).fps, (seq.width, seq.height))
    typer.echo(f"wrote {out} ({n} frame{'s' * (n != 1)})")
