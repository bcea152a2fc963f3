"""`slt data check`: is a dataset root ready for training, and if not, what to fix."""

from __future__ import annotations

import os
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from slt_serve.errors import SltError
from slt_serve.vocab import GlossVocab
from slt_training.data.annotations import Clip, available_splits, load_split
from slt_training.data.vocab import coverage

VOCAB_FILE = "gloss_vocab.json"


@dataclass(frozen=True)
class SplitReport:
    """One split's health."""

    split: str
    clips: int
    signers: int
    with_gloss: int
    with_text: int
    videos_missing: int  # `video` set but nothing at that path
    no_video: int  # `video` not set at all
    frames_min: int | None  # over clips with a known num_frames
    frames_median: float | None
    frames_max: int | None
    frames_unknown: int  # num_frames not set
    frames_mismatch: int  # num_frames disagrees with the video (only when probed)
    oov_rate: float | None  # % gloss tokens not in gloss_vocab.json (None: no vocab yet)


@dataclass(frozen=True)
class DatasetReport:
    root: Path
    splits: list[SplitReport]
    problems: list[str] = field(default_factory=list)  # things that stop training
    warnings: list[str] = field(default_factory=list)  # things worth a look

    @property
    def ok(self) -> bool:
        return not self.problems


def _probe_frames(root: Path, clips: list[Clip], workers: int) -> list[int | None]:
    from slt_serve.video import probe

    def one(c: Clip) -> int | None:
        try:
            return probe(root / c.video).num_frames
        except SltError:
            return None

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, clips))


def _split_report(
    root: Path, split: str, vocab: GlossVocab | None, probe: bool, workers: int
) -> SplitReport:
    clips = load_split(root, split)
    with_video = [c for c in clips if c.video]
    present = [c for c in with_video if (root / c.video).exists()]
    known = [c.num_frames for c in clips if c.num_frames is not None]
    mismatch = 0
    if probe and present:
        counted = _probe_frames(root, present, workers)
        mismatch = sum(
            1 for c, n in zip(present, counted) if n is None or (c.num_frames not in (None, n))
        )
    return SplitReport(
        split=split,
        clips=len(clips),
        signers=len({c.signer for c in clips if c.signer}),
        with_gloss=sum(1 for c in clips if c.gloss),
        with_text=sum(1 for c in clips if c.text),
        videos_missing=len(with_video) - len(present),
        no_video=len(clips) - len(with_video),
        frames_min=min(known) if known else None,
        frames_median=statistics.median(known) if known else None,
        frames_max=max(known) if known else None,
        frames_unknown=len(clips) - len(known),
        frames_mismatch=mismatch,
        oov_rate=coverage(vocab, clips).oov_rate if vocab else None,
    )


def check_dataset(root: str | os.PathLike, probe: bool = True, workers: int = 4) -> DatasetReport:
    """Validate annotations, videos, frame counts and vocabulary coverage of a dataset root."""
    root = Path(root)
    if not root.is_dir():
        raise SltError(f"{root}: not a folder")
    splits = available_splits(root)
    if not splits:
        raise SltError(
            f"{root}: no train.jsonl, dev.jsonl or test.jsonl; import or generate data first"
        )
    vocab = GlossVocab.load(root / VOCAB_FILE) if (root / VOCAB_FILE).is_file() else None
    reports = [_split_report(root, s, vocab, probe, workers) for s in splits]
    problems, warnings = _findings(reports, vocab)
    return DatasetReport(root, reports, problems, warnings)


def _findings(reports: list[SplitReport], vocab: GlossVocab | None) -> tuple[list[str], list[str]]:
    problems: list[str] = []
    warnings: list[str] = []
    names = {r.split for r in reports}
    if "train" not in names:
        problems.append("no train split")
    if "dev" not in names:
        warnings.append("no dev split: models cannot be selected on held-out data")
    for r in reports:
        if r.videos_missing:
            problems.append(
                f"{r.split}: {r.videos_missing} clip(s) point at videos that do not exist"
            )
        if r.with_gloss < r.clips:
            problems.append(
                f"{r.split}: {r.clips - r.with_gloss} clip(s) without gloss "
                "(derive them with `slt data gloss-from-text`)"
            )
        if r.with_text < r.clips:
            warnings.append(
                f"{r.split}: {r.clips - r.with_text} clip(s) without text (no translation target)"
            )
        if r.no_video:
            warnings.append(
                f"{r.split}: {r.no_video} clip(s) without a video path (text-only: G2T only)"
            )
        if r.frames_unknown:
            warnings.append(
                f"{r.split}: {r.frames_unknown} clip(s) without num_frames (`slt data frames` fills it)"
            )
        if r.frames_mismatch:
            problems.append(
                f"{r.split}: {r.frames_mismatch} video(s) unreadable or with a frame count unlike num_frames"
            )
        if r.oov_rate and r.split != "train":
            warnings.append(
                f"{r.split}: {r.oov_rate:.1f}% of gloss tokens are not in the vocabulary"
            )
    if vocab is None:
        warnings.append(f"no {VOCAB_FILE} yet: build it with `slt data vocab`")
    return problems, warnings
