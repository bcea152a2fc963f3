"""Annotation importers: PHOENIX-style CSVs and a folder of videos with a table of sentences.

(The TwoStream/SLRT pickle files have their own module, `slrt_pickle`.)
Every importer returns clips per split; `write_dataset` writes them to a root.
"""

from __future__ import annotations

import csv
import logging
import os
import random
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from slt_serve.errors import SltError
from slt_training.data.annotations import SPLITS, Clip, split_path, write_jsonl

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg")


def split_from_filename(path: str | os.PathLike) -> str:
    """'PHOENIX-2014-T.dev.corpus.csv' or 'phoenix14t.pami0.train' → the split it names."""
    parts = Path(path).name.lower().replace("-", ".").replace("_", ".").split(".")
    found = [s for s in SPLITS if s in parts]
    if len(found) != 1:
        raise SltError(
            f"{path}: cannot tell the split from the file name; pass --split train|dev|test"
        )
    return found[0]


def write_dataset(
    out: str | os.PathLike, splits: dict[str, list[Clip]], overwrite: bool = False
) -> None:
    """Write each split's clips to `out/<split>.jsonl`, refusing to replace files unless asked."""
    out = Path(out)
    existing = [s for s in splits if split_path(out, s).exists()]
    if existing and not overwrite:
        raise SltError(
            f"{out}: {', '.join(f'{s}.jsonl' for s in existing)} already exist; "
            "pass --overwrite to replace them"
        )
    for split, clips in splits.items():
        write_jsonl(split_path(out, split), clips)


def _read_table(path: Path, delimiter: str | None = None) -> list[dict[str, str]]:
    if not path.is_file():
        raise SltError(f"{path}: table not found")
    text = path.read_text(encoding="utf-8-sig")
    if delimiter is None:
        if path.suffix.lower() == ".tsv":
            delimiter = "\t"
        else:
            try:
                delimiter = csv.Sniffer().sniff(text.splitlines()[0], delimiters=",;\t|").delimiter
            except (csv.Error, IndexError):
                delimiter = ","
    rows = list(csv.DictReader(text.splitlines(), delimiter=delimiter))
    if not rows:
        raise SltError(f"{path}: the table has a header but no rows (or is empty)")
    return [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()} for r in rows]


def _require(path: Path, row: dict[str, str], lineno: int, *names: str) -> str:
    for n in names:
        if row.get(n):
            return row[n]
    raise SltError(f"{path}:{lineno}: column '{names[0]}' is missing or empty")


def read_phoenix_csv(path: str | os.PathLike, video_dir: str | None = None) -> list[Clip]:
    """A PHOENIX-2014(-T) `|`-separated corpus file → clips named `<split>/<name>`.

    `video_dir` (relative to the dataset root) is where the clips' frame folders
    live, e.g. `features/fullFrame-210x260px/train`; the CSV's own folder column
    (`<name>/1/*.png`) is appended with its glob dropped.
    """
    path = Path(path)
    split = split_from_filename(path)
    rows = _read_table(path, delimiter="|")
    if "orth" not in rows[0] and "annotation" not in rows[0]:
        raise SltError(f"{path}: expected PHOENIX columns name|video|…|orth|translation")
    clips = []
    for lineno, row in enumerate(rows, 2):
        name = _require(path, row, lineno, "name", "id")
        video = None
        if video_dir is not None:
            folder = row.get("video") or row.get("folder") or name
            folder = "/".join(p for p in folder.split("/") if "*" not in p)
            video = f"{video_dir.rstrip('/')}/{folder}"
        clips.append(
            Clip(
                name=f"{split}/{name}",
                signer=row.get("speaker") or row.get("signer") or "",
                gloss=_require(path, row, lineno, "orth", "annotation"),
                text=row.get("translation", ""),
                video=video,
            )
        )
    return clips


@dataclass(frozen=True)
class FolderImport:
    """What `import_folder` made of a folder of videos and a table of sentences."""

    splits: dict[str, list[Clip]]  # split → clips
    split_by: str  # "table" (a split column), "signer" (unseen test signers) or "clip"
    videos_without_row: int  # videos in the folder the table does not mention


def _index_videos(videos: Path) -> dict[str, Path]:
    if not videos.is_dir():
        raise SltError(f"{videos}: not a folder of videos")
    index: dict[str, Path] = {}
    for p in sorted(videos.rglob("*")):
        if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file():
            rel = p.relative_to(videos).with_suffix("").as_posix()
            index[rel] = p
            index.setdefault(p.stem, p)
    if not index:
        raise SltError(f"{videos}: no video files ({', '.join(VIDEO_EXTENSIONS)}) found")
    return index


def import_folder(
    videos: str | os.PathLike,
    table: str | os.PathLike,
    out: str | os.PathLike,
    dev_fraction: float = 0.1,
    test_fraction: float = 0.1,
    seed: int = 0,
    skip_missing: bool = False,
) -> FolderImport:
    """A folder of videos + a CSV/TSV (name, text [, gloss, signer, split]) → clips per split.

    Videos are referenced where they lie (paths relative to `out`), not copied.
    Without a split column, whole signers are held out for dev and test so that
    test signers are unseen; with fewer than three signers, clips are split at random.
    """
    videos, table, out = Path(videos), Path(table), Path(out)
    index = _index_videos(videos)
    rows = _read_table(table)
    clips, split_of, missing = [], {}, []
    for lineno, row in enumerate(rows, 2):
        name = _require(table, row, lineno, "name", "video", "file")
        key = (
            Path(name).with_suffix("").as_posix()
            if Path(name).suffix.lower() in VIDEO_EXTENSIONS
            else name
        )
        if key not in index:
            missing.append(name)
            continue
        rel = os.path.relpath(index[key].resolve(), out.resolve())
        clips.append(
            Clip(
                name=key,
                signer=row.get("signer", ""),
                gloss=row.get("gloss", ""),
                text=_require(table, row, lineno, "text", "sentence", "translation"),
                video=Path(rel).as_posix(),
            )
        )
        if row.get("split"):
            split_of[key] = row["split"].lower()
    if missing and not skip_missing:
        shown = ", ".join(missing[:5]) + (" …" if len(missing) > 5 else "")
        raise SltError(
            f"{table}: {len(missing)} row(s) name videos not found under {videos}: {shown} "
            "(fix the names, or pass --skip-missing to import the rest)"
        )
    if missing:
        log.warning("skipped %d rows whose video is missing", len(missing))
    used = {c.name for c in clips}
    unused = len(set(index.values())) - len({index[n] for n in used})
    splits, split_by = _assign_splits(clips, split_of, dev_fraction, test_fraction, seed, table)
    return FolderImport(splits=splits, split_by=split_by, videos_without_row=unused)


def _assign_splits(
    clips: list[Clip],
    split_of: dict[str, str],
    dev_fraction: float,
    test_fraction: float,
    seed: int,
    table: Path,
) -> tuple[dict[str, list[Clip]], str]:
    if split_of:
        bad = sorted({s for s in split_of.values() if s not in SPLITS})
        if bad or len(split_of) != len(clips):
            raise SltError(
                f"{table}: the split column must name train, dev or test on every row (found {bad or 'empty cells'})"
            )
        out: dict[str, list[Clip]] = defaultdict(list)
        for c in clips:
            out[split_of[c.name]].append(c)
        return dict(out), "table"
    if not 0 <= dev_fraction < 1 or not 0 <= test_fraction < 1 or dev_fraction + test_fraction >= 1:
        raise SltError("--dev-fraction and --test-fraction must be in [0, 1) and sum below 1")
    rng = random.Random(seed)
    signers = sorted({c.signer for c in clips if c.signer})
    if len(signers) >= 3 and all(c.signer for c in clips):
        return _split_by_signer(clips, signers, dev_fraction, test_fraction, rng), "signer"
    order = list(range(len(clips)))
    rng.shuffle(order)
    n_test, n_dev = round(len(clips) * test_fraction), round(len(clips) * dev_fraction)
    which = {i: "test" for i in order[:n_test]} | {i: "dev" for i in order[n_test : n_test + n_dev]}
    out = {s: [c for i, c in enumerate(clips) if which.get(i, "train") == s] for s in SPLITS}
    return out, "clip"


def _split_by_signer(
    clips: list[Clip],
    signers: list[str],
    dev_fraction: float,
    test_fraction: float,
    rng: random.Random,
) -> dict[str, list[Clip]]:
    """Hold whole signers out: test first, then dev, each as near its share of the clips
    as whole signers allow, and at least one signer when its share is not 0.

    Signers come in a seeded random order (another --seed, other held-out signers); one
    is taken when it brings the split nearer its target. Taking signers until the
    target was passed held out 27% for test on a 60-clip, 6-signer corpus asked for 10%.
    """
    counts = defaultdict(int)
    for c in clips:
        counts[c.signer] += 1
    rng.shuffle(signers)
    assign: dict[str, str] = {}
    pool = list(signers)
    for split, fraction in (("test", test_fraction), ("dev", dev_fraction)):
        target, taken = fraction * len(clips), 0
        if target <= 0:
            continue
        for s in list(pool):
            if len(pool) > 1 and abs(taken + counts[s] - target) < abs(taken - target):
                pool.remove(s)
                assign[s] = split
                taken += counts[s]
        if not taken and len(pool) > 1:  # every signer overshoots: the one nearest the target
            s = min(pool, key=lambda x: abs(counts[x] - target))
            pool.remove(s)
            assign[s] = split
    return {s: [c for c in clips if assign.get(c.signer, "train") == s] for s in SPLITS}
