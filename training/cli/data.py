"""`slt data …`: import annotations, derive glosses, build the vocabulary, cache frames
and keypoints, generate a synthetic corpus, check a dataset root."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import typer

from slt_serve.errors import SltError

from .common import DatasetArg, ImportOutOpt, OverwriteSplitsOpt, echo_next, warn_failed

app = typer.Typer(
    help="Prepare datasets: import annotations, derive glosses, build the vocabulary, "
    "cache frames, generate a synthetic corpus, check a dataset root.",
    no_args_is_help=True,
)


@app.command("import-slrt")
def import_slrt(
    files: list[Path] = typer.Argument(..., help="TwoStream/SLRT annotation files (gzip pickles)."),
    out: Path = ImportOutOpt,
    split: str = typer.Option(None, help="Split of a single file (default: from its name)."),
    video_dir: str = typer.Option(
        None, help="Folder (relative to --out) holding each clip's video or frame folder by name."
    ),
    overwrite: bool = OverwriteSplitsOpt,
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
    echo_next(f"slt data vocab {out}")


@app.command("import-phoenix")
def import_phoenix(
    files: list[Path] = typer.Argument(
        ..., help="PHOENIX `|`-separated corpus CSVs (one per split)."
    ),
    out: Path = ImportOutOpt,
    video_dir: str = typer.Option(
        None,
        help="Frames folder relative to --out, with {split} for the split, "
        "e.g. 'features/fullFrame-210x260px/{split}'.",
    ),
    overwrite: bool = OverwriteSplitsOpt,
) -> None:
    """Import PHOENIX-2014 / PHOENIX-2014T corpus CSV files."""
    from slt_training.data.importers import read_phoenix_csv, split_from_filename, write_dataset

    splits = {}
    for f in files:
        s = split_from_filename(f)
        splits[s] = read_phoenix_csv(f, video_dir.format(split=s) if video_dir else None)
    write_dataset(out, splits, overwrite)
    _echo_written(out, splits)
    echo_next(f"slt data vocab {out}")


@app.command("import-folder")
def import_folder(
    videos: Path = typer.Argument(..., help="Folder of videos (searched recursively)."),
    table: Path = typer.Option(
        ..., "--table", "-t", help="CSV/TSV with columns name, text [, gloss, signer, split]."
    ),
    out: Path = ImportOutOpt,
    dev_fraction: float = typer.Option(0.1, help="Share of clips for dev (when no split column)."),
    test_fraction: float = typer.Option(
        0.1, help="Share of clips for test (when no split column)."
    ),
    seed: int = typer.Option(0, help="Seed of the split assignment."),
    skip_missing: bool = typer.Option(
        False, help="Import the rows whose video exists, skip the rest."
    ),
    overwrite: bool = OverwriteSplitsOpt,
) -> None:
    """Import your own videos and a table of sentences; splits by signer when none is given."""
    from slt_training.data.check import guess_language
    from slt_training.data.importers import import_folder as run_import
    from slt_training.data.importers import write_dataset

    result = run_import(videos, table, out, dev_fraction, test_fraction, seed, skip_missing)
    write_dataset(out, result.splits, overwrite)
    for split, clips in result.splits.items():
        signers = len({c.signer for c in clips if c.signer})
        typer.echo(
            f"wrote {out / (split + '.jsonl')}: {len(clips)} clips"
            + (f", {signers} signer{'s' * (signers != 1)}" if signers else "")
        )
    how = {
        "table": "the table's split column",
        "signer": "signer (test signers unseen)",
        "clip": "clip, at random (fewer than 3 signers: test signers are seen in training)",
    }
    typer.echo(f"split by {how[result.split_by]}")
    if result.videos_without_row:
        typer.echo(f"{result.videos_without_row} video(s) in {videos} have no row in the table")
    every = [c for clips in result.splits.values() for c in clips]
    if all(c.gloss for c in every):
        echo_next(f"slt data vocab {out}")
    else:
        lang = guess_language(c.text for c in every) or "LANG (the text's language: de, en, …)"
        echo_next(f"slt data gloss-from-text {out} --lang {lang}")


@app.command("export-slrt")
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


@app.command("gloss-from-text")
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
    examples: int = typer.Option(5, help="Example sentences to show with their glosses."),
) -> None:
    """Derive pseudo-glosses from each clip's text (for corpora without gloss annotation)."""
    from slt_training.data import pseudogloss as pg
    from slt_training.data.annotations import parse_splits, read_jsonl

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
        typer.echo(f"wrote {name}: {n} clips glossed from text")
    typer.echo(f"{done.vocabulary} distinct glosses; for example:")
    shown = [c for c in read_jsonl(done.files[0]) if c.text.strip()][: max(examples, 0)]
    for clip in shown:
        typer.echo(f"  {clip.text}  →  {clip.gloss}")
    if done.human_kept:
        typer.echo(f"{done.human_kept} human gloss(es) kept in 'gloss_human'")
    if done.no_text:
        typer.secho(f"warning: {done.no_text} clip(s) have no text", fg=typer.colors.YELLOW)
    echo_next(f"slt data vocab {dataset.parent if dataset.is_file() else dataset}")


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


def _corpus_option(text: str):
    """An option of `slt data synth` that replaces the --preset's value of the corpus setting
    (`SynthOptions` field) of its name; None keeps the preset's."""
    return typer.Option(None, help=text, rich_help_panel="Corpus settings (override --preset)")


@app.command("synth")
def synth(
    ctx: typer.Context,
    out: Path = typer.Argument(..., help="Folder to write (new or empty; or a run to resume)."),
    preset: str = typer.Option(
        "cpu", help="Sizes: 'cpu' (1500 clips, 48 glosses, 128²) or 'gpu' (5000, 300, 256²)."
    ),
    clips: int = _corpus_option("Clips over all splits (80/10/10). Default: from --preset."),
    glosses: int = _corpus_option("Lexicon size, 16..304. Default: from --preset."),
    size: int = _corpus_option("Frame width = height in pixels, even. Default: from --preset."),
    signers: int = _corpus_option("Distinct signers. Default: 6."),
    seed: int = _corpus_option("Random seed: same seed + settings, same corpus. Default: 0."),
    fps: float = _corpus_option("Frame rate of the videos. Default: 25."),
    lang: str = _corpus_option("Text language: en or vi. Default: en."),
    layout: str = _corpus_option(
        "'splits': dataset root (videos, keypoints, train/dev/test.jsonl); 'folder': "
        "videos + sentences.csv (name,text,signer; no glosses) + ground_truth.jsonl. Default: splits."
    ),
    workers: int = typer.Option(
        None, help="Processes rendering clips. Default: min(4, CPU cores)."
    ),
    progress: bool = typer.Option(True, help="Show a progress bar."),
) -> None:
    """Generate a synthetic signed corpus: a drawn signer, one distinct sign per gloss,
    sentences whose gloss order differs from the text, ground-truth 133-point keypoints.

    Rerunning with the same settings resumes (finished clips are skipped).
    """
    import os
    from dataclasses import fields

    from slt_training.data.synth.corpus import SynthOptions, generate, options_for

    # each corpus setting is a _corpus_option of the same name (None: the preset's)
    opts = options_for(preset, **{f.name: ctx.params[f.name] for f in fields(SynthOptions)})
    if workers is None:
        workers = min(4, os.cpu_count() or 1)
    if workers < 1:
        raise SltError(f"--workers {workers}: need at least 1")
    result = generate(out, opts, workers=workers, progress=progress)
    _echo_synth(out, opts, result)


def _echo_synth(out: Path, opts, result) -> None:
    """What `slt data synth` wrote, how long it took, and what to run next."""
    per_split = ", ".join(f"{s} {n}" for s, n in result.clips.items())
    if opts.layout == "folder":  # no splits yet: import-folder makes them
        per_split = "videos/ + sentences.csv; true glosses in ground_truth.jsonl"
    typer.echo(
        f"wrote {out}: {sum(result.clips.values())} clips ({per_split}), {opts.glosses} glosses, "
        f"{opts.signers} signers, {opts.size}x{opts.size} @ {opts.fps:g} fps, text in {opts.lang}"
    )
    typer.echo(
        f"rendered {result.rendered} clip(s), {result.frames} frames in {result.seconds:.1f} s"
        + (f"; {result.skipped} already there" if result.skipped else "")
    )
    if opts.layout == "folder":
        echo_next(
            f"slt data import-folder {out / 'videos'} --table {out / 'sentences.csv'} "
            f"--out DATASET, then slt data gloss-from-text DATASET --lang {opts.lang}"
        )
    else:
        echo_next(f"slt data vocab {out}")


@app.command("vocab")
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
    unseen: Counter[str] = Counter()
    worst = 0.0
    for split in available_splits(dataset):
        clips = load_split(dataset, split)
        c = coverage(vocab, clips)
        if split != "train":
            unseen.update(g for clip in clips for g in clip.glosses if g not in vocab)
            worst = max(worst, c.oov_rate)
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
    if unseen:
        common = ", ".join(f"{g} ({n})" for g, n in unseen.most_common(8))
        typer.echo(f"dev/test glosses never seen in train (cannot be recognised): {common}")
    if worst > 10:
        typer.secho(
            f"warning: {worst:.1f}% of a held-out split's gloss tokens are unknown; more train "
            "data, or gloss-from-text --stopwords/--lemmas to merge variants, lowers it",
            fg=typer.colors.YELLOW,
        )
    echo_next(
        f"slt data frames {dataset} --size 256  (the config's data.frame_size; 64 or 128 for a CPU trial)"
    )


@app.command("frames")
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
    warn_failed(report.failed, report.cache_dir / "errors.jsonl")
    echo_next(
        f"slt data check {dataset}  (TwoStream: slt data keypoints {dataset} first; SingleStream needs none)"
    )


@app.command("check")
def check(
    dataset: Path = DatasetArg,
    probe: bool = typer.Option(True, help="Open every video to verify its frame count."),
    workers: int = typer.Option(4, help="Videos probed in parallel."),
) -> None:
    """Validate a dataset root: annotations, videos present, frame counts, vocabulary coverage."""
    from rich.console import Console
    from rich.table import Table

    from slt_training.data.check import check_dataset, dataset_state

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
    echo_next(dataset_state(dataset).next_step)


@app.command("keypoints")
def keypoints(
    dataset: Path = DatasetArg,
    pose: Path = typer.Option(
        None,
        help="pose.onnx from `slt export pose` (HRNet), or 'mediapipe' (MediaPipe Holistic, "
        "the `pose` extra).",
    ),
    from_pose: Path = typer.Option(
        None, help="Folder of <clip name>.pose files (MediaPipe, OpenPose)."
    ),
    splits: str = typer.Option("all", help="Splits to do, e.g. 'train,dev'; 'all': present."),
    workers: int = typer.Option(
        None,
        help="Clips in parallel (default: 1 with --pose pose.onnx, up to 4 otherwise).",
    ),
    batch_size: int = typer.Option(16, help="Frames per pose.onnx run."),
    overwrite: bool = typer.Option(False, help="Redo clips whose .npz exists."),
) -> None:
    """Write DATASET/keypoints/<clip>.npz (133 COCO-WholeBody points per frame) for every clip,
    with pose.onnx, MediaPipe Holistic or from existing .pose files; resumable, failures listed
    in errors.jsonl."""
    from slt_training.data.keypoints import extract_keypoints

    if pose is None and from_pose is None:
        raise SltError(
            "give exactly one source: --pose mediapipe (MediaPipe Holistic, runs offline once "
            "the `pose` extra is installed: see docs/pose-models.md), --pose pose.onnx (made "
            "once by `slt export pose` from an mmpose HRNet whole-body checkpoint) or "
            "--from-pose DIR (<clip>.pose files, e.g. from pose-format's videos_to_poses); "
            "without any, train SingleStream (model.kind: single_stream), which needs no keypoints"
        )
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
    warn_failed(report.failed, report.out_dir / "errors.jsonl")
    echo_next(f"slt data check {dataset}")


@app.command("overlay")
def overlay(
    dataset: Path = DatasetArg,
    clip: str = typer.Argument(..., help="Clip name, as in the annotations."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output .mp4 (whole clip) or .png (first frame)."
    ),
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
        raise SltError(
            f"{kp_file}: no keypoints for this clip; run `slt data keypoints {dataset}` first"
        )
    seq = read_npz(kp_file)
    video = dataset / found[0].video
    n = write_overlay(
        out, read_frames(video), seq.keypoints, probe(video).fps, (seq.width, seq.height)
    )
    typer.echo(f"wrote {out} ({n} frame{'s' * (n != 1)})")
