"""MediaPipe Holistic on the drawn signer of `slt data synth`: how often it finds it, and how
far its keypoints land from the ground truth the corpus ships.

The synthetic corpus carries exact 133-point COCO-WholeBody keypoints for every frame
(`DS/keypoints/<clip>.npz`). This runs MediaPipe Holistic (complexity 1, the wheel's
only one) on the rendered frames of `--clips` clips of a split, maps its 543 points
onto the same 133 (`slt_serve.pose_mediapipe`), and reports per corpus:

- the share of frames where it finds the body (nose and both shoulders), the face, a
  person (body and face agreeing), the left and the right hand (half of a hand's 21
  points), as `slt_serve.signer` counts them, and the clips the no-signer rule refuses;
- the mean and median pixel error of each part's points against the ground truth, over
  the frames where MediaPipe found that part (masked points are not guessed, so they
  are not counted: the found shares say how often), also as a share of the frame side;
- for the hands, the share of found hands that lie nearer the *other* ground-truth hand
  (a left/right swap).

A corpus is either given (`--data DS`, e.g. from `slt data synth DS --size 256`) or
generated into a temporary folder per `--sizes` entry (the same seed and sentences at
each frame size). With `--keypoints MP_DS`, a dataset sharing DS's clips whose
keypoints were written by `slt data keypoints MP_DS --pose mediapipe`, those are read
instead of running MediaPipe again.

    python benchmarks/bench_pose_synth.py [--sizes 128,256] [--clips 30] [--split train]
    python benchmarks/bench_pose_synth.py --data DS [--keypoints MP_DS] [--clips 30]

About 0.05 CPU-seconds per frame for MediaPipe (90 frames a clip on average) plus the
rendering of a generated corpus: `--sizes 128,256 --split train --clips 30` took 22 minutes
wall (5.5 CPU-minutes) on 2 cores shared with about ten other processes.
"""

from __future__ import annotations

import argparse
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from slt_serve import skeleton
from slt_serve.signer import no_signer_reason, signer_presence

PARTS = {  # part → the 133-point indices compared
    "body": tuple(range(11)),  # head and upper body: what a signer's frame shows
    "face": tuple(range(skeleton.FACE.start, skeleton.FACE.stop)),
    "left hand": tuple(range(skeleton.LEFT_HAND.start, skeleton.LEFT_HAND.stop)),
    "right hand": tuple(range(skeleton.RIGHT_HAND.start, skeleton.RIGHT_HAND.stop)),
}
SHARES = ("body", "face", "person", "left_hand", "right_hand")


@dataclass
class Tally:
    """Running totals over the clips of one corpus."""

    size: int = 0
    source: str = "MediaPipe"
    clips: int = 0
    frames: int = 0
    refused: int = 0

    def __post_init__(self) -> None:
        self.found = dict.fromkeys(SHARES, 0.0)  # frames where found
        self.errors: dict[str, list[np.ndarray]] = {part: [] for part in PARTS}
        self.relative: list[np.ndarray] = []  # per found hand: mean point error / hand size
        self.hands = 0  # hands found and compared
        self.swapped = 0  # of those, nearer the other ground-truth hand

    def add(self, mp: np.ndarray, truth: np.ndarray) -> None:
        """One clip's MediaPipe and ground-truth keypoints, (T, 133, 3) each."""
        n = min(len(mp), len(truth))  # the same frames; a short decode is not counted twice
        mp, truth = mp[:n], truth[:n]
        presence = signer_presence(mp)
        self.clips += 1
        self.frames += n
        self.refused += no_signer_reason(presence) is not None
        for key in SHARES:
            self.found[key] += getattr(presence, key) * n
        for part, idx in PARTS.items():
            ours, gt = mp[:, idx], truth[:, idx]
            # a part counts where MediaPipe found most of it (hands, face: all or nothing)
            found = (ours[..., 2] >= 0.5).mean(axis=1) >= 0.5
            both = found[:, None] & (ours[..., 2] > 0) & (gt[..., 2] > 0)
            error = np.linalg.norm(ours[..., :2] - gt[..., :2], axis=-1)
            self.errors[part].append(error[both])
            if part.endswith("hand"):  # hand size: the diagonal of its ground-truth box
                span = gt[found, :, :2].max(axis=1) - gt[found, :, :2].min(axis=1)
                self.relative.append(error[found].mean(axis=1) / np.linalg.norm(span, axis=1))
        self.count_swaps(mp, truth)

    def count_swaps(self, mp: np.ndarray, truth: np.ndarray) -> None:
        sides = (skeleton.LEFT_HAND, skeleton.RIGHT_HAND)
        for side, other in (sides, sides[::-1]):
            found = (mp[:, side, 2] >= 0.5).mean(axis=1) >= 0.5
            ours = mp[found, side, :2].mean(axis=1)
            same = np.linalg.norm(ours - truth[found, side, :2].mean(axis=1), axis=1)
            cross = np.linalg.norm(ours - truth[found, other, :2].mean(axis=1), axis=1)
            self.hands += int(found.sum())
            self.swapped += int((cross < same).sum())

    def error(self, part: str) -> tuple[float, float]:
        """Mean and median pixel error of a part's found points (nan when never found)."""
        e = np.concatenate(self.errors[part]) if self.errors[part] else np.zeros(0)
        return (float(e.mean()), float(np.median(e))) if len(e) else (np.nan, np.nan)


def mediapipe_keypoints(root: Path, name: str, video: Path, cached: Path | None) -> np.ndarray:
    """MediaPipe's (T, 133, 3) keypoints of a clip: read from `cached`'s keypoints or run."""
    from slt_serve.pose_mediapipe import MediaPipePose
    from slt_serve.video import iter_frames
    from slt_training.data.keypoints import keypoints_path
    from slt_training.data.pose_files import read_npz

    if cached is not None:
        return read_npz(keypoints_path(cached, name)).keypoints
    return np.stack(list(MediaPipePose().estimate(iter_frames(root / video))))


def measure(root: Path, split: str, clips: int, cached: Path | None = None) -> list[Tally]:
    """MediaPipe against the ground truth on the first `clips` clips of a split, and the
    ground truth's own found shares beside it (what there was to find)."""
    import json

    from slt_training.data.annotations import load_split
    from slt_training.data.keypoints import keypoints_path
    from slt_training.data.pose_files import read_npz

    settings = json.loads((root / "synth.json").read_text())["settings"]
    tally = Tally(size=settings["size"])
    reference = Tally(size=settings["size"], source="ground truth")
    for clip in load_split(root, split)[:clips]:
        truth = read_npz(keypoints_path(root, clip.name)).keypoints
        tally.add(mediapipe_keypoints(root, clip.name, clip.video, cached), truth)
        reference.add(truth, truth)
    return [tally, reference]


def generated(size: int, clips: int, split: str, folder: Path) -> Path:
    """A corpus at `size`² with at least `clips` clips in `split` (80/10/10 splits)."""
    from slt_training.data.synth.corpus import generate, options_for

    total = math.ceil(clips / (0.8 if split == "train" else 0.1))
    root = folder / f"synth{size}"
    generate(root, options_for("cpu", clips=total, glosses=16, size=size), workers=1)
    return root


def table(tallies: list[Tally], split: str) -> Table:
    t = Table(
        "keypoints",
        "frame",
        "clips",
        "frames",
        *(s.replace("_", " ") for s in SHARES),
        "refused",
        *(f"{p} px" for p in PARTS),
        "hand px / side",
        "hand error / size",
        "hands swapped",
        title=f"MediaPipe Holistic (complexity 1) on the drawn signer, {split} clips: shares of "
        "frames where found; pixel error of found points vs the ground truth (mean / median)",
    )
    for tally in tallies:
        hand = np.nanmean([tally.error(p)[0] for p in ("left hand", "right hand")])
        errors = (
            *("{:.1f} / {:.1f}".format(*tally.error(p)) for p in PARTS),
            f"{100 * hand / tally.size:.1f} %",
            f"{np.median(np.concatenate(tally.relative)):.2f}" if tally.relative else "-",
            f"{tally.swapped} of {tally.hands}",
        )
        t.add_row(
            tally.source,
            f"{tally.size}²",
            str(tally.clips),
            str(tally.frames),
            *(f"{tally.found[k] / max(tally.frames, 1):.2f}" for k in SHARES),
            str(tally.refused),
            *(errors if tally.source == "MediaPipe" else ["-"] * len(errors)),
            end_section=tally.source != "MediaPipe",
        )
    return t


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="a `slt data synth` corpus (splits layout)")
    parser.add_argument("--keypoints", type=Path, help="MediaPipe keypoints of --data's clips")
    parser.add_argument("--sizes", default="128,256", help="frame sides to generate, no --data")
    parser.add_argument(
        "--split", help="default: dev with --data; train when generating (fewest to render)"
    )
    parser.add_argument("--clips", type=int, default=30)
    args = parser.parse_args()
    args.split = args.split or ("dev" if args.data is not None else "train")
    if args.data is not None:
        tallies = measure(args.data, args.split, args.clips, args.keypoints)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            sizes = [int(s) for s in args.sizes.split(",")]
            roots = [generated(s, args.clips, args.split, Path(tmp)) for s in sizes]
            tallies = [t for root in roots for t in measure(root, args.split, args.clips)]
    Console(width=220).print(table(tallies, args.split))


if __name__ == "__main__":
    main()
