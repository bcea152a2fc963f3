"""The frames cache: every clip decoded once, resized to a square, kept small and fast to read.

Layout: `ROOT/frames/<size>/<clip name>.mp4` (a name with "/" makes sub-folders),
`cache.json` (the format), `errors.jsonl` (clips the last run could not cache).

Format, chosen by measuring (`python benchmarks/bench_frames.py`): one short
H.264 file per clip, libx264 with `tune=fastdecode` (no CABAC, no deblocking),
4:2:0, BT.601 limited range. RGB↔YUV is done by OpenCV on both sides (SIMD,
and the same matrix both ways) instead of libswscale, which cost half the
read time. Against the reference's zip of JPEGs (quality 90), at crf 17, one
run on this 2-core machine: 0.17× the bytes, 1.5× the clips/s reading whole
clips, 1.1× with TwoStream-SLT's temporal augmentation (whole clip at speed
0.5–1.5), 1 dB lower PSNR (crf 14 matches the PSNR at 0.25× the bytes).
Where it loses: a sparse subset or a short crop (32 of 116 frames) reads at
~0.4× the JPEG rate, because decoding runs from the first frame up to the
last one asked for; only the frames asked for are converted to RGB
(`FrameCache.load(name, indices)`). The size is what makes the cache fit in
the page cache (PHOENIX-2014T train at 256²: ~2.5 GB instead of ~15 GB).

Frame counts: a clip's `num_frames` in the annotations is filled in when it is
missing; a different count is reported (`FramesReport.mismatched`) and the
annotation left as it is: the cache holds every decodable frame, and
`FrameCache.num_frames` is what training should trust.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import av
import cv2
import numpy as np
from tqdm import tqdm

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write, write_json
from slt_serve.video import iter_frames, probe, write_video
from slt_training.data.annotations import Clip, load_split, parse_splits, split_path, write_jsonl

log = logging.getLogger(__name__)

FORMAT = "h264-fastdecode-bt601/1"  # bump when the on-disk format changes
SUFFIX = ".mp4"
DEFAULT_SIZE = 256  # pixels; training crops 224² out of it, as the reference does
DEFAULT_CRF = 17  # x264 quality (lower is better): JPEG q90 − 1 dB PSNR (bench_frames.py)
PRESET = "fast"  # x264 speed/size trade-off for the one-off write
MIN_SIZE, MAX_SIZE = 16, 2048


@dataclass(frozen=True)
class ClipError:
    """A clip the cache could not hold, and why (one line of errors.jsonl)."""

    name: str
    split: str
    video: str | None
    reason: str


@dataclass(frozen=True)
class FramesReport:
    """What `cache_frames` did."""

    cache_dir: Path  # ROOT/frames/<size>
    cached: int  # clips decoded and written by this run
    skipped: int  # clips already complete in the cache
    failed: tuple[ClipError, ...]  # also written to cache_dir/errors.jsonl
    filled: int  # annotations whose missing num_frames was filled in
    mismatched: tuple[tuple[str, int, int], ...] = field(default=())  # (name, annotated, cached)
    seconds: float = 0.0  # wall time of the run


@dataclass(frozen=True)
class _Job:
    name: str
    split: str
    video: str  # as annotated, relative to the dataset root
    source: Path
    out: Path
    size: int
    crf: int
    threads: int


# --- one clip ---------------------------------------------------------------------------


def write_clip(
    frames: Iterable[np.ndarray],
    path: Path,
    fps: float = 25.0,
    crf: int = DEFAULT_CRF,
    threads: int = 0,
) -> int:
    """Encode RGB frames (H, W, 3, both even) to one cache file atomically; returns the count."""
    return write_video(
        path, frames, fps, crf=crf, preset=PRESET, tune="fastdecode", threads=threads
    )


def read_clip(path: Path, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
    """Frames of one cache file, (T, H, W, 3) uint8 RGB; `indices` picks (and may repeat) frames.

    Decoding stops after the last index asked for, and only those frames are
    converted to RGB (the conversion is most of the cost).
    """
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        total, width, height = (
            stream.frames,
            stream.codec_context.width,
            stream.codec_context.height,
        )
        idx = np.arange(total) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= total):
            raise SltError(
                f"{path}: frame indices must be in [0, {total}), got {idx.min()}..{idx.max()}"
            )
        out = np.empty((len(idx), height, width, 3), np.uint8)
        rows: dict[int, list[int]] = {}
        for row, i in enumerate(idx.tolist()):
            rows.setdefault(i, []).append(row)
        last, seen = (int(idx.max()) if idx.size else -1), 0
        for frame in container.decode(stream):
            if seen > last:
                break
            if seen in rows:
                first, *rest = rows[seen]
                cv2.cvtColor(frame.to_ndarray(), cv2.COLOR_YUV2RGB_I420, dst=out[first])
                out[rest] = out[first]
            seen += 1
        if seen <= last:
            raise SltError(f"{path}: cache file is damaged; rerun `slt data frames --overwrite`")
    return out


def _cache_one(job: _Job) -> tuple[str, int | None, str | None]:
    """Worker: decode, resize, encode one clip. Any failure is returned, never raised."""
    try:
        fps = probe(job.source).fps
        frames = iter_frames(job.source, size=job.size)
        return job.name, write_clip(frames, job.out, fps, job.crf, job.threads), None
    except SltError as e:
        return job.name, None, str(e)
    except Exception as e:  # one bad clip (disk, codec) must not stop thousands of others
        log.debug("%s failed", job.name, exc_info=True)
        return job.name, None, f"{type(e).__name__}: {e}"


# --- the reader -------------------------------------------------------------------------


class FrameCache:
    """Reads cached clips. Holds no open files, so it is safe to copy into DataLoader workers."""

    def __init__(self, root: str | os.PathLike, size: int = DEFAULT_SIZE) -> None:
        self.dir = cache_dir(root, size)
        meta = self.dir / "cache.json"
        if not meta.is_file():
            raise SltError(
                f"{self.dir}: no frames cache; run `slt data frames {root} --size {size}`"
            )
        _check_format(meta)

    def path(self, name: str) -> Path:
        return clip_path(self.dir, name)

    def __contains__(self, name: str) -> bool:
        try:
            return self.path(name).is_file()
        except SltError:
            return False

    def num_frames(self, name: str) -> int:
        with av.open(str(self._existing(name))) as container:
            return container.streams.video[0].frames

    def load(self, name: str, indices: Sequence[int] | np.ndarray | None = None) -> np.ndarray:
        """(T, size, size, 3) uint8 RGB; `indices` selects frames (a temporal crop or resampling)."""
        return read_clip(self._existing(name), indices)

    def _existing(self, name: str) -> Path:
        path = self.path(name)
        if not path.is_file():
            raise SltError(f"{name}: not in the frames cache {self.dir}; run `slt data frames`")
        return path


def cache_dir(root: str | os.PathLike, size: int) -> Path:
    return Path(root) / "frames" / str(size)


def clip_path(directory: Path, name: str) -> Path:
    """Where a clip lives in the cache; a name that would escape the folder is refused."""
    parts = name.split("/")
    if any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise SltError(f"clip name {name!r} cannot be a cache path (empty part, '.', '..' or '\\')")
    return directory.joinpath(*parts[:-1], parts[-1] + SUFFIX)


def _check_format(meta: Path) -> None:
    import json

    found = json.loads(meta.read_text(encoding="utf-8")).get("format")
    if found != FORMAT:
        raise SltError(
            f"{meta.parent}: cache format {found!r}, this version reads {FORMAT!r}; "
            "rebuild it with `slt data frames --overwrite`"
        )


# --- the whole dataset ------------------------------------------------------------------


def cache_frames(
    root: str | os.PathLike,
    splits: str | Sequence[str] = "all",
    size: int = DEFAULT_SIZE,
    workers: int | None = None,
    overwrite: bool = False,
    crf: int = DEFAULT_CRF,
    progress: bool = True,
) -> FramesReport:
    """Decode every clip's video once into ROOT/frames/<size>/; resumable, one bad clip never stops it."""
    started = time.perf_counter()
    root, workers = Path(root), workers or os.cpu_count() or 1
    _check_options(root, size, workers, crf)
    clips = _load_clips(
        root, parse_splits(splits, root) if isinstance(splits, str) else list(splits)
    )
    directory = cache_dir(root, size)
    _prepare_dir(directory, size, crf, overwrite)
    jobs, failed, skipped = _plan(root, clips, directory, size, crf, workers, overwrite)
    counts, run_failed = _run(jobs, workers, progress)
    failed += run_failed
    _write_errors(directory, failed)
    filled, mismatched = _update_annotations(root, clips, directory, counts)
    report = FramesReport(
        directory,
        len(counts),
        skipped,
        tuple(failed),
        filled,
        tuple(mismatched),
        time.perf_counter() - started,
    )
    log.debug(  # the CLI prints the report
        "frames %s: %d cached, %d skipped, %d failed",
        directory,
        report.cached,
        skipped,
        len(failed),
    )
    return report


def _check_options(root: Path, size: int, workers: int, crf: int) -> None:
    if not root.is_dir():
        raise SltError(f"{root}: dataset root not found")
    if not (MIN_SIZE <= size <= MAX_SIZE and size % 2 == 0):
        raise SltError(f"size={size}: must be even and in [{MIN_SIZE}, {MAX_SIZE}] (H.264 4:2:0)")
    if workers < 1:
        raise SltError(f"workers={workers}: must be at least 1")
    if not 0 <= crf <= 51:
        raise SltError(f"crf={crf}: x264 quality must be in [0, 51] (lower is better)")


def _load_clips(root: Path, splits: list[str]) -> dict[str, list[Clip]]:
    """Clips per split; a name used in two splits is refused (one cache file per name)."""
    if not splits:
        raise SltError(f"{root}: no split files (train.jsonl, dev.jsonl, test.jsonl) to cache")
    clips = {split: load_split(root, split) for split in splits}
    seen: dict[str, str] = {}
    for split, items in clips.items():
        for clip in items:
            if clip.name in seen:
                raise SltError(f"clip name '{clip.name}' is in both {seen[clip.name]} and {split}")
            seen[clip.name] = split
    return clips


def _prepare_dir(directory: Path, size: int, crf: int, overwrite: bool) -> None:
    """Write cache.json (refusing to mix formats) and remove temp files a crash left behind."""
    meta = directory / "cache.json"
    if meta.is_file() and not overwrite:
        _check_format(meta)
    write_json(meta, {"format": FORMAT, "size": size, "crf": crf, "suffix": SUFFIX})
    for tmp in directory.rglob(".*.tmp"):
        log.debug("removing interrupted write %s", tmp)
        tmp.unlink(missing_ok=True)


def _plan(root, clips, directory, size, crf, workers, overwrite):
    """Jobs for the clips still to cache; clips without a usable video fail here."""
    jobs, failed, skipped = [], [], 0
    threads = max(1, (os.cpu_count() or 1) // workers)
    for split, items in clips.items():
        for clip in items:
            try:
                out = clip_path(directory, clip.name)
            except SltError as e:
                failed.append(ClipError(clip.name, split, clip.video, str(e)))
                continue
            if not clip.video:
                failed.append(ClipError(clip.name, split, None, "no 'video' in the annotation"))
            elif out.is_file() and out.stat().st_size and not overwrite:
                skipped += 1
            else:
                jobs.append(
                    _Job(clip.name, split, clip.video, root / clip.video, out, size, crf, threads)
                )
    return jobs, failed, skipped


def _run(jobs: list[_Job], workers: int, progress: bool):
    """Run the jobs (in processes when workers > 1); returns frame counts and failures."""
    counts: dict[str, int] = {}
    failed: list[ClipError] = []
    by_name = {job.name: job for job in jobs}
    bar = tqdm(
        total=len(jobs), unit="clip", desc="frames", disable=None if progress else True
    )  # None: off when not a terminal
    if workers > 1 and len(jobs) > 1:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("forkserver"))
        results = pool.map(_cache_one, jobs, chunksize=1)
    else:
        pool, results = None, map(_cache_one, jobs)
    try:
        for name, n, reason in results:
            job = by_name[name]
            if reason is None:
                counts[name] = n
            else:
                log.warning("%s: %s", name, reason)
                failed.append(ClipError(name, job.split, job.video, reason))
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return counts, failed


def _write_errors(directory: Path, failed: list[ClipError]) -> None:
    import json

    with atomic_write(directory / "errors.jsonl") as f:
        for err in failed:
            f.write(json.dumps(asdict(err), ensure_ascii=False) + "\n")


def _update_annotations(root: Path, clips, directory: Path, counts: dict[str, int]):
    """Fill in missing num_frames from the cache; report a different count, never overwrite it."""
    filled, mismatched = 0, []
    for split, items in clips.items():
        changed = False
        for clip in items:
            n = counts.get(clip.name)
            if n is None and clip.num_frames is None:
                n = _cached_count(directory, clip.name)  # cached by an earlier run
            if n is None:
                continue
            if clip.num_frames is None:
                clip.num_frames, filled, changed = n, filled + 1, True
            elif clip.num_frames != n:
                mismatched.append((clip.name, clip.num_frames, n))
        if changed:
            write_jsonl(split_path(root, split), items)
    if mismatched:
        name, annotated, cached = mismatched[0]
        log.warning(
            "%d clip(s) have a different frame count in the annotations than in their video "
            "(e.g. %s: %d annotated, %d decoded); training uses the cached count",
            len(mismatched),
            name,
            annotated,
            cached,
        )
    return filled, mismatched


def _cached_count(directory: Path, name: str) -> int | None:
    try:
        path = clip_path(directory, name)
        if not path.is_file():
            return None
        with av.open(str(path)) as container:
            return container.streams.video[0].frames
    except (SltError, av.FFmpegError):
        return None
