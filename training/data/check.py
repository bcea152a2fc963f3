"""`slt data check` and `slt doctor DATASET`: is a dataset root ready for training, and if not,
what to fix and which preparation step to run next."""

from __future__ import annotations

import json
import os
import re
import statistics
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from slt_serve.doctor import FAIL, INFO, OK, WARN, Check, DatasetState
from slt_serve.errors import SltError
from slt_serve.vocab import SPECIALS, GlossVocab
from slt_training.data.annotations import (
    Clip,
    JsonLineError,
    available_splits,
    json_lines,
    load_split,
    split_path,
)
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


# --- what a dataset root holds, in preparation order, and the step to run next -----------------
# (`slt doctor DATASET` shows it, through this stack's `slt` plugin; `slt data check` ends with it)

# What to run once a dataset root is prepared (the training entry point).
TRAIN_HINT = (
    "cp configs/custom.yaml my.yaml, set run_dir, data.root: {root}, data.lang and "
    "data.frame_size: {size}, then slt pipeline my.yaml"
)
DEV_OOV_WARN = 10.0  # % of dev/test gloss tokens missing from the vocabulary
IMPORT_HINT = "slt data import-folder VIDEOS --table sentences.csv --out {root}"


def guess_language(texts: Iterable[str]) -> str | None:
    """'vi' or 'zh' when the text shows its script, else None (the user says which)."""
    sample = " ".join(t for _, t in zip(range(200), texts))
    if re.search(r"[\u4e00-\u9fff]", sample):
        return "zh"
    if re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", sample.lower()):
        return "vi"
    return None


def dataset_state(root: str | os.PathLike) -> DatasetState:
    """What a dataset root holds, in preparation order, and the command to run next.

    Reads files and JSON only, leniently (a root half-way through preparation is the
    normal case); `check_dataset` is the deeper validation.
    """
    root = Path(root)
    splits, checks, stop = _read_splits(root)
    if stop:
        return DatasetState(checks, stop)
    every = [c for clips in splits.values() for c in clips]
    steps: list[str] = []  # the blocking steps still to do, in order
    checks.append(_videos_check(root, every, steps))
    no_gloss = [c for c in every if not str(c.get("gloss") or "").strip()]
    checks.append(_glosses_check(root, every, no_gloss, steps))
    vocab_check, vocab_fix = _vocab_check(root, splits)
    checks.append(vocab_check)
    if vocab_fix and not no_gloss:
        steps.append(vocab_fix)
    names = {c["name"] for c in every if c.get("video")}
    caches = _frames_caches(root, names)
    checks.append(_frames_check(root, names, caches, steps))
    if names:
        checks.append(_keypoints_check(root, names))
    if steps:
        return DatasetState(checks, steps[0])
    sizes = sorted(s for s, n in caches.items() if n == len(names)) or [256]
    return DatasetState(checks, TRAIN_HINT.format(root=root, size=sizes[-1]))


def _read_splits(root: Path) -> tuple[dict[str, list[dict]], list[Check], str | None]:
    """The split files as dicts, the annotations check, and the next step when they block."""
    if not root.is_dir():
        fix = IMPORT_HINT.format(root=root)
        return {}, [Check("dataset", FAIL, f"{root}: no such folder", fix)], fix
    splits: dict[str, list[dict]] = {}
    for split in available_splits(root):
        path = split_path(root, split)
        clips, error = _read_split(path)
        if error:
            check = Check("annotations", FAIL, error, f"slt data check {root} (names the field)")
            return splits, [check], f"fix {path}, then slt doctor {root}"
        splits[split] = clips
    if "train" not in splits:
        fix = IMPORT_HINT.format(root=root)
        what = "no train.jsonl" + (f" (found {', '.join(splits)})" if splits else "")
        return splits, [Check("annotations", FAIL, what, fix)], fix
    return splits, [_annotations_check(splits)], None


def _read_split(path: Path) -> tuple[list[dict], str | None]:
    clips = []
    try:
        for lineno, row in json_lines(path):
            if not isinstance(row, dict) or not row.get("name"):
                return clips, f"{path.name} line {lineno} has no 'name'"
            clips.append(row)
    except JsonLineError as e:
        return clips, f"{path.name} line {e.lineno} is not JSON"
    return clips, None


def _annotations_check(splits: dict[str, list[dict]]) -> Check:
    counts = ", ".join(f"{s} {len(c)}" for s, c in splits.items())
    signers = {
        s: {c.get("signer") for c in clips if c.get("signer")} for s, clips in splits.items()
    }
    seen = signers.get("train", set())
    unseen = sorted(s for split in ("dev", "test") for s in signers.get(split, set()) - seen)
    has_dev = "dev" in splits
    return Check(
        "annotations",
        OK if has_dev else WARN,
        f"{counts} clips; "
        + (f"{len(unseen)} dev/test signer(s) unseen in train" if unseen else "no unseen signers")
        + ("" if has_dev else "; no dev split (no model selection)"),
        "" if has_dev else "import with a dev split (import-folder makes one)",
    )


def _videos_check(root: Path, every: list[dict], steps: list[str]) -> Check:
    missing = [c["name"] for c in every if c.get("video") and not (root / c["video"]).exists()]
    if missing:
        fix = f"fix the 'video' paths (relative to {root}) or the files; slt data check {root}"
        steps.append(fix)
        return Check(
            "videos", FAIL, f"{len(missing)} clip(s) point at no file, e.g. {missing[0]}", fix
        )
    no_video = sum(1 for c in every if not c.get("video"))
    return Check(
        "videos",
        OK if not no_video else WARN,
        "every clip's video is there"
        + (f"; {no_video} clip(s) have none (text only)" if no_video else ""),
    )


def _glosses_check(root: Path, every: list[dict], no_gloss: list[dict], steps: list[str]) -> Check:
    if no_gloss:
        lang = guess_language(str(c.get("text") or "") for c in every) or "LANG"
        fix = f"slt data gloss-from-text {root} --lang {lang}"
        steps.append(fix)
        return Check("glosses", FAIL, f"{len(no_gloss)} of {len(every)} clips have no gloss", fix)
    pseudo = sum(1 for c in every if str(c.get("gloss_source", "")).startswith("pseudo"))
    kind = f"pseudo-glosses ({pseudo} clips)" if pseudo else "human glosses"
    return Check("glosses", OK, f"every clip has a gloss: {kind}")


def _glosses(clips: Iterable[dict]) -> list[str]:
    return [g for c in clips for g in str(c.get("gloss") or "").split()]


def _vocab_check(root: Path, splits: dict[str, list[dict]]) -> tuple[Check, str | None]:
    path = root / VOCAB_FILE
    fix = f"slt data vocab {root}"
    if not path.is_file():
        return Check("gloss vocabulary", FAIL, f"no {VOCAB_FILE}", fix), fix
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return Check("gloss vocabulary", FAIL, f"{VOCAB_FILE} unreadable: {e}", fix), fix
    if not isinstance(table, dict) or any(s not in table for s in SPECIALS):
        return (
            Check("gloss vocabulary", FAIL, f"{VOCAB_FILE} lacks {', '.join(SPECIALS)}", fix),
            fix,
        )
    stale = sorted(set(_glosses(splits["train"])) - set(table))
    if stale:
        detail = f"{len(stale)} train gloss(es) missing, e.g. {stale[0]}: built before the glosses changed"
        return Check("gloss vocabulary", FAIL, detail, fix + "  (rebuild it)"), fix
    oov = []
    worst = 0.0
    for split in ("dev", "test"):
        tokens = _glosses(splits.get(split, []))
        if tokens:
            rate = 100 * sum(1 for g in tokens if g not in table) / len(tokens)
            worst = max(worst, rate)
            oov.append(f"{split} OOV {rate:.1f}%")
    detail = f"{len(table) - len(SPECIALS)} glosses" + (f"; {', '.join(oov)}" if oov else "")
    if worst > DEV_OOV_WARN:
        return (
            Check(
                "gloss vocabulary",
                WARN,
                detail + ": glosses unseen in train cannot be recognised",
                "more train data, or --stopwords/--lemmas for gloss-from-text to merge variants",
            ),
            None,
        )
    return Check("gloss vocabulary", OK, detail), None


def _frames_caches(root: Path, names: set[str]) -> dict[int, int]:
    """size → clips of `names` in ROOT/frames/<size>/ (a cache is a folder with cache.json)."""
    out = {}
    base = root / "frames"
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        if d.is_dir() and d.name.isdigit() and (d / "cache.json").is_file():
            out[int(d.name)] = sum(1 for n in names if (d / f"{n}.mp4").is_file())
    return out


def _frames_check(root: Path, names: set[str], caches: dict[int, int], steps: list[str]) -> Check:
    if not names:
        return Check("frames cache", INFO, "no clip has a video (G2T only)")
    if not caches:
        fix = f"slt data frames {root} --size 256"
        steps.append(fix)
        return Check("frames cache", FAIL, "none yet", fix + "  (64 for a CPU trial)")
    detail = ", ".join(f"{s}²: {n}/{len(names)} clips" for s, n in caches.items())
    if any(n == len(names) for n in caches.values()):
        return Check(
            "frames cache", OK, detail + " (the config's data.frame_size must be one of these)"
        )
    size = max(caches, key=caches.get)
    fix = f"slt data frames {root} --size {size}"
    steps.append(fix)
    return Check(
        "frames cache",
        FAIL,
        f"{detail}; errors in frames/{size}/errors.jsonl",
        fix + " (resumes; fix or drop the failed clips)",
    )


def _keypoints_check(root: Path, names: set[str]) -> Check:
    kp = root / "keypoints"
    have = sum(1 for n in names if (kp / f"{n}.npz").is_file())
    fix = f"slt data keypoints {root} --pose pose.onnx  (or --from-pose DIR of .pose files)"
    if have == len(names):
        return Check("keypoints", OK, f"{have}/{len(names)} clips: TwoStream ready")
    if have == 0:
        return Check("keypoints", INFO, "none: SingleStream only (TwoStream needs them)", fix)
    return Check(
        "keypoints",
        WARN,
        f"{have}/{len(names)} clips; TwoStream needs all (see keypoints/errors.jsonl)",
        fix + " (resumes)",
    )
