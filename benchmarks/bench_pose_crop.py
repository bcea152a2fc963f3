"""HRNet's crop on real clips: boxes from MediaPipe's keypoints vs the full frame vs tracking.

`slt_serve.pose.PoseEstimator` runs HRNet top-down without a person detector: it crops
each batch of frames by a box around the keypoints of the last frame already estimated
(`box_from_keypoints`, padded by 1.25), and by the whole frame when there are too few
(the first frame). TwoStream-SLT's extractor instead boxes each frame with a detector.
With MediaPipe Holistic as a real second model, this measures on the real clips
(../shared/data/real-clips, README there for sources and licences) what each way of
choosing the crop does to the signer MediaPipe finds on each frame (its points with a
score of at least 0.5 inside the frame):

- **detector**: the box around MediaPipe's points of the same frame (MediaPipe as
  HRNet's person detector);
- **track, batch 1 / 16**: the box `PoseEstimator` would take if its keypoints were
  MediaPipe's: from the previous frame (batch 1) or from the last frame of the previous
  batch of 16 (the default), the full frame before there is one;
- **full frame**: the whole frame, widened to the crop's 3:4 aspect.

Columns: frames where a found hand point falls outside the crop ("hand cut"), frames
where the nose falls outside ("signer lost"), the share of all found points inside, and
how large the signer is in the 288×384 crop (shoulder width in crop pixels, median):
a crop that keeps everything by showing the whole frame leaves the signer small.
Frames where MediaPipe finds no nose are not counted (the frames column says how many
are); a clip the no-signer rule refuses (the cartoon) is listed but left out of 'all'.
This measures the crop logic, not HRNet: no network runs, so random weights play no part
(`tests/test_pose_crop_mediapipe.py` runs the code path with random weights).

    python benchmarks/bench_pose_crop.py [--clips all]

About 0.05 CPU-seconds per frame (MediaPipe; 762 frames in all).
"""

from __future__ import annotations

import argparse

import numpy as np
from rich.console import Console
from rich.table import Table
from shared_data import REAL_CLIPS

from slt_serve import skeleton
from slt_serve.pose import Box, PoseOptions, box_from_keypoints, full_frame_box
from slt_serve.pose_mediapipe import MediaPipePose
from slt_serve.signer import no_signer_reason, signer_presence
from slt_serve.video import iter_frames

INPUT_SIZE = (384, 288)  # HRNet whole-body's crop (height, width)
ASPECT = INPUT_SIZE[1] / INPUT_SIZE[0]
NOSE, LEFT_SHOULDER, RIGHT_SHOULDER = 0, 5, 6
HANDS = np.r_[skeleton.LEFT_HAND, skeleton.RIGHT_HAND]
STRATEGIES = ("detector", "track, batch 1", "track, batch 16", "full frame")


def boxes(kp: np.ndarray, strategy: str, frame_size: tuple[int, int]) -> list[Box]:
    """One crop box per frame of a clip whose keypoints are `kp` (T, 133, 3)."""
    full = full_frame_box(*frame_size, ASPECT)
    options = PoseOptions()
    if strategy == "full frame":
        return [full] * len(kp)
    if strategy == "detector":  # the same frame's points; none found: the full frame
        return [box_from_keypoints(k, ASPECT, options, frame_size) or full for k in kp]
    batch = 1 if strategy.endswith("batch 1") else 16
    out: list[Box] = []
    for start in range(0, len(kp), batch):  # as PoseEstimator._batch chooses its box
        box = None if start == 0 else box_from_keypoints(kp[start - 1], ASPECT, options, frame_size)
        out += [box or full] * len(kp[start : start + batch])
    return out


def inside(points: np.ndarray, box: Box) -> np.ndarray:
    """(n, 2) pixels → (n,) inside the box."""
    return (np.abs(points[:, 0] - box.cx) <= box.width / 2) & (
        np.abs(points[:, 1] - box.cy) <= box.height / 2
    )


def crop_stats(kp: np.ndarray, crops: list[Box], frame_size: tuple[int, int]) -> dict:
    """What each frame's crop keeps of the signer MediaPipe found on it."""
    w, h = frame_size
    sure = (kp[..., 2] >= 0.5) & (kp[..., 0] >= 0) & (kp[..., 0] < w)
    sure &= (kp[..., 1] >= 0) & (kp[..., 1] < h)
    counted = sure[:, NOSE]  # a frame counts where MediaPipe found the signer's nose
    hand_cut = lost = 0
    kept, points, widths = 0, 0, []
    for t in np.flatnonzero(counted):
        box, found = crops[t], sure[t]
        ok = inside(kp[t, :, :2], box)
        hands = found[HANDS]
        hand_cut += bool((hands & ~ok[HANDS]).any())
        lost += not ok[NOSE]
        kept += int((ok & found).sum())
        points += int(found.sum())
        if found[LEFT_SHOULDER] and found[RIGHT_SHOULDER]:
            span = np.linalg.norm(kp[t, LEFT_SHOULDER, :2] - kp[t, RIGHT_SHOULDER, :2])
            widths.append(span * INPUT_SIZE[1] / box.width)
    return {
        "frames": int(counted.sum()),
        "hand cut": hand_cut,
        "lost": lost,
        "kept": kept / max(points, 1),
        "shoulders": float(np.median(widths)) if widths else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", default="all", help="comma-separated file names, or 'all'")
    args = parser.parse_args()
    names = (
        sorted(p.name for p in REAL_CLIPS.iterdir() if p.suffix in (".mp4", ".mov"))
        if args.clips == "all"
        else args.clips.split(",")
    )
    pose = MediaPipePose()
    total = {s: {"frames": 0, "hand cut": 0, "lost": 0} for s in STRATEGIES}
    table = Table(
        "clip", "crop", "frames", "hand cut", "signer lost", "points kept", "shoulders px",
        title="HRNet's 288×384 crop vs the signer MediaPipe finds (frames with a nose found)",
    )  # fmt: skip
    for name in names:
        frames = list(iter_frames(REAL_CLIPS / name))
        size = (frames[0].shape[1], frames[0].shape[0])
        kp = np.stack(list(pose.estimate(frames)))
        signer = no_signer_reason(signer_presence(kp)) is None
        label = name if signer else f"{name} (no signer: not in 'all')"
        for strategy in STRATEGIES:
            s = crop_stats(kp, boxes(kp, strategy, size), size)
            for key in total[strategy]:
                total[strategy][key] += s[key] if signer else 0
            table.add_row(
                label if strategy == STRATEGIES[0] else "",
                strategy,
                str(s["frames"]),
                str(s["hand cut"]),
                str(s["lost"]),
                f"{s['kept']:.3f}",
                f"{s['shoulders']:.0f}",
                end_section=strategy == STRATEGIES[-1],
            )
    for strategy, t in total.items():
        table.add_row(
            "all" if strategy == STRATEGIES[0] else "",
            strategy,
            str(t["frames"]),
            f"{t['hand cut']} ({t['hand cut'] / max(t['frames'], 1):.1%})",
            f"{t['lost']} ({t['lost'] / max(t['frames'], 1):.1%})",
            "",
            "",
        )
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
