"""Every clip of a dataset → ROOT/keypoints/<name>.npz, for the keypoint stream.

Three sources:
- `--pose pose.onnx`: the clip's video through `slt_serve.pose.PoseEstimator`
  (HRNet exported by `slt export pose`), 133 COCO-WholeBody points per frame;
- `--pose mediapipe`: the clip's video through MediaPipe Holistic
  (`slt_serve.pose_mediapipe`, the `pose` extra), its 543 points mapped by name
  onto the same 133, a point it lacks masked;
- `--from-pose DIR`: existing pose-format files DIR/<name>.pose (MediaPipe
  Holistic, OpenPose-137 or ours) mapped onto the same 133 points, so corpora
  that ship MediaPipe keypoints train TwoStream without running HRNet.

Like the frames cache: clips run in parallel processes, a clip whose `.npz`
exists is skipped (rerunning resumes), one bad clip never stops the others,
and every failure is recorded in ROOT/keypoints/errors.jsonl.
"""

from __future__ import annotations

import json
import logging
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write
from slt_training.data.annotations import load_split, parse_splits
from slt_training.data.frames import ClipError, clip_path

log = logging.getLogger(__name__)

KEYPOINTS_DIR = "keypoints"
SUFFIX = ".npz"


@dataclass(frozen=True)
class KeypointsReport:
    """What `extract_keypoints` did."""

    out_dir: Path  # ROOT/keypoints
    written: int  # clips written by this run
    skipped: int  # clips whose .npz was already there
    failed: tuple[ClipError, ...]  # also in out_dir/errors.jsonl
    frames: int  # frames written by this run
    frame_mismatches: int  # clips whose keypoint frame count differs from num_frames
    seconds: float  # wall time


@dataclass(frozen=True)
class _Job:
    name: str
    split: str
    source: Path  # video or .pose file
    out: Path
    num_frames: int | None  # as annotated


def keypoints_path(root: str | os.PathLike, name: str) -> Path:
    """ROOT/keypoints/<name>.npz; a name that would escape the folder is refused."""
    return _with_suffix(clip_path(Path(root) / KEYPOINTS_DIR, name), SUFFIX)


def _with_suffix(path: Path, suffix: str) -> Path:
    """`clip_path` appends the frames cache's suffix; swap it (names may contain dots)."""
    return path.with_name(path.name.removesuffix(".mp4") + suffix)


def extract_keypoints(
    root: str | os.PathLike,
    pose_model: str | os.PathLike | None = None,
    from_pose: str | os.PathLike | None = None,
    splits: str = "all",
    workers: int | None = None,
    batch_size: int = 16,
    overwrite: bool = False,
    progress: bool = True,
) -> KeypointsReport:
    """Write ROOT/keypoints/<name>.npz for every clip of `splits` (see the module doc)."""
    started = time.perf_counter()
    root = Path(root)
    _check_options(root, pose_model, from_pose, workers, batch_size)
    onnx_model = pose_model is not None and not is_mediapipe(pose_model)
    workers = workers or (1 if onnx_model else min(4, os.cpu_count() or 1))
    out_dir = root / KEYPOINTS_DIR
    jobs, failed, skipped = _plan(root, parse_splits(splits, root), from_pose, overwrite)
    for tmp in out_dir.rglob(".*.tmp") if out_dir.is_dir() else ():
        tmp.unlink(missing_ok=True)  # left by an interrupted run
    counts, run_failed, mismatches = _run(jobs, pose_model, workers, batch_size, progress)
    failed += run_failed
    _write_errors(out_dir, failed)
    report = KeypointsReport(
        out_dir,
        len(counts),
        skipped,
        tuple(failed),
        sum(counts.values()),
        mismatches,
        time.perf_counter() - started,
    )
    log.debug(  # the CLI prints the report
        "keypoints %s: %d written, %d skipped, %d failed",
        out_dir,
        len(counts),
        skipped,
        len(failed),
    )
    return report


def is_mediapipe(pose_model: str | os.PathLike | None) -> bool:
    """`--pose mediapipe` (the word, not a file path)."""
    from slt_serve.pose_mediapipe import is_named

    return is_named(pose_model)


def _check_options(root: Path, pose_model, from_pose, workers, batch_size) -> None:
    if not root.is_dir():
        raise SltError(f"{root}: dataset root not found")
    if (pose_model is None) == (from_pose is None):
        raise SltError(
            "give exactly one source: --pose pose.onnx, --pose mediapipe or --from-pose DIR"
        )
    if is_mediapipe(pose_model):
        from slt_serve.pose_mediapipe import holistic_module

        holistic_module()  # not installed: the install step, before any clip runs
    elif pose_model is not None and not Path(pose_model).is_file():
        raise SltError(
            f"{pose_model}: no pose model there; make one with `slt export pose CKPT`, "
            "or use --pose mediapipe"
        )
    if from_pose is not None and not Path(from_pose).is_dir():
        raise SltError(f"{from_pose}: not a folder of .pose files")
    if workers is not None and workers < 1:
        raise SltError(f"workers={workers}: must be at least 1")
    if batch_size < 1:
        raise SltError(f"batch_size={batch_size}: must be at least 1")


def _plan(root: Path, splits: list[str], from_pose, overwrite: bool):
    """Jobs for the clips still to do; clips without a source fail here."""
    if not splits:
        raise SltError(f"{root}: no split files (train.jsonl, dev.jsonl, test.jsonl)")
    jobs, failed, skipped = [], [], 0
    for split in splits:
        for clip in load_split(root, split):
            try:
                out = keypoints_path(root, clip.name)
                if from_pose is not None:
                    source = _with_suffix(clip_path(Path(from_pose), clip.name), ".pose")
                elif clip.video:
                    source = root / clip.video
                else:
                    raise SltError("no 'video' in the annotation")
                if not source.exists():
                    raise SltError(f"{source}: not found")
            except SltError as e:
                failed.append(ClipError(clip.name, split, clip.video, str(e)))
                continue
            if out.is_file() and out.stat().st_size and not overwrite:
                skipped += 1
            else:
                jobs.append(_Job(clip.name, split, source, out, clip.num_frames))
    return jobs, failed, skipped


# --- workers ----------------------------------------------------------------------------------

_estimator = None  # one PoseEstimator per worker process


def _init_worker(pose_model: str | None, batch_size: int, threads: int) -> None:
    global _estimator
    if pose_model is None:
        _estimator = None
        return
    if is_mediapipe(pose_model):
        from slt_serve.pose_mediapipe import MediaPipePose

        _estimator = MediaPipePose()
        return
    from slt_serve.pose import PoseEstimator, PoseOptions

    _estimator = PoseEstimator(pose_model, PoseOptions(batch_size=batch_size, threads=threads))
    if _estimator.spec.num_keypoints != 133:
        raise SltError(
            f"{pose_model}: gives {_estimator.spec.num_keypoints} keypoints; the keypoint cache "
            "holds the 133 COCO-WholeBody points: export a whole-body checkpoint"
        )


def _one(job: _Job) -> tuple[str, int | None, str | None]:
    """Worker: one clip → .npz. Any failure is returned, never raised."""
    from slt_training.data.pose_files import read_pose, write_npz

    try:
        seq = _estimator.estimate_video(job.source) if _estimator else read_pose(job.source)[0]
        write_npz(job.out, seq)
        return job.name, len(seq.keypoints), None
    except SltError as e:
        return job.name, None, str(e)
    except Exception as e:  # one bad clip must not stop thousands of others
        log.debug("%s failed", job.name, exc_info=True)
        return job.name, None, f"{type(e).__name__}: {e}"


def _run(jobs: list[_Job], pose_model, workers: int, batch_size: int, progress: bool):
    counts: dict[str, int] = {}
    failed: list[ClipError] = []
    mismatches = 0
    by_name = {job.name: job for job in jobs}
    model = None if pose_model is None else str(pose_model)
    threads = max(1, (os.cpu_count() or 1) // workers)
    if workers > 1 and len(jobs) > 1:
        pool = ProcessPoolExecutor(
            workers,
            mp_context=get_context("forkserver"),
            initializer=_init_worker,
            initargs=(model, batch_size, threads),
        )
        results = pool.map(_one, jobs, chunksize=1)
    else:
        _init_worker(model, batch_size, 0)
        pool, results = None, map(_one, jobs)
    bar = tqdm(total=len(jobs), unit="clip", desc="keypoints", disable=None if progress else True)
    try:
        for name, n, reason in results:
            job = by_name[name]
            if reason is None:
                counts[name] = n
                mismatches += job.num_frames is not None and job.num_frames != n
            else:
                log.warning("%s: %s", name, reason)
                failed.append(ClipError(name, job.split, str(job.source), reason))
            bar.update()
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return counts, failed, mismatches


def _write_errors(out_dir: Path, failed: list[ClipError]) -> None:
    with atomic_write(out_dir / "errors.jsonl") as f:
        for err in failed:
            f.write(json.dumps(asdict(err), ensure_ascii=False) + "\n")
