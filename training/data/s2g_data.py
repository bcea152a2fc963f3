"""Sign clips for S2G training: frames (and keypoints) from the caches, augmented, batched.

One item is one clip, read from the frames cache (`FrameCache`), its gloss ids from
`gloss_vocab.json` and, for TwoStream, its keypoints from `keypoints/<name>.npz`.
Augmentation follows TwoStream-SLT: a random crop (≥ `crop_min_area` of the frame,
aspect in `crop_aspect`) resized to the input size, a temporal speed change by
resampling frame indices (0.5-1.5×), at most `max_frames` frames, optional colour
jitter. Eval items are a centre crop of all frames (resampled down to `max_frames`).

Determinism: a training item is fetched by the key `(epoch, index)` and its random
choices come from a generator seeded by `(seed, epoch, index)`, so the same seed
gives the same clips whatever the number of workers, and a resumed run sees what
the interrupted one would have. `EpochSampler` yields those keys in a per-epoch
permutation seeded the same way.

Frame stride: `frame_stride` N keeps every N-th cached frame (25 fps → 12.5 fps for
N = 2), so the network sees a clip at a lower frame rate for a fraction of the compute;
the speed augmentation resamples around that rate.

Motion channels: with `motion_channels`, the frame difference x[t] - x[t-1] of the
normalised frames (0 at t = 0) is appended to the RGB channels (6 channels in all).
On the rendered synthetic corpus at 64², CTC from raw RGB stayed on the all-blank
plateau where the difference channels broke through within minutes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

from slt_serve import skeleton
from slt_serve.clip_input import box_keypoints, crop_resize, normalise
from slt_serve.errors import SltError
from slt_serve.vocab import GlossVocab
from slt_training.config import AugmentationConfig
from slt_training.data.annotations import Clip, load_split
from slt_training.data.check import VOCAB_FILE
from slt_training.data.frames import FrameCache

log = logging.getLogger(__name__)

KEYPOINT_DIR = "keypoints"
MIN_FRAMES = 8  # shorter clips are skipped: the 4-block S3D leaves them ≤ 1 feature step


def keypoint_indices(subset: str | Sequence[int], total: int) -> np.ndarray:
    """Indices of the keypoints a named subset keeps out of `total` in the file.

    `coco_wholebody_79` is TwoStream-SLT's choice of COCO-WholeBody points (pose 11,
    mouth every 2nd, both hands, other face points every 3rd), `coco_wholebody_63`
    the same without the other face points, `all` every point (e.g. MediaPipe).
    """
    if not isinstance(subset, str):
        idx = np.asarray(subset, dtype=np.int64)
    elif subset == "all":
        idx = np.arange(total)
    else:
        if total != skeleton.NUM_KEYPOINTS:
            raise SltError(
                f"keypoint subset {subset!r} needs {skeleton.NUM_KEYPOINTS} COCO-WholeBody points, "
                f"the files have {total}; set data.keypoints: all or a list of indices"
            )
        parts = [np.arange(0, 11), np.arange(71, 91, 2), np.arange(91, 133)]
        if subset == "coco_wholebody_79":
            parts.append(np.arange(23, 71, 3))
        elif subset != "coco_wholebody_63":
            raise SltError(f"unknown keypoint subset {subset!r}")
        idx = np.sort(np.concatenate(parts))
    if idx.size == 0 or idx.min() < 0 or idx.max() >= total:
        raise SltError(f"keypoint indices must be in 0..{total - 1}, got {subset}")
    return idx


@dataclass(frozen=True)
class ClipOptions:
    """How clips become network input."""

    frame_size: int  # side of the cached frames
    input_size: int  # side of the network input
    mean: tuple[float, ...] = (0.5, 0.5, 0.5)  # per RGB channel, on [0, 1] values
    std: tuple[float, ...] = (0.5, 0.5, 0.5)
    motion_channels: bool = False  # append frame differences
    frame_stride: int = 1  # keep every N-th cached frame (temporal down-sampling)
    keypoints: str | tuple[int, ...] | None = None  # subset for TwoStream; None: no keypoints
    eval_crop: float = 1.0  # centre crop side fraction for eval items
    augmentation: AugmentationConfig = AugmentationConfig()
    seed: int = 0


@dataclass(frozen=True)
class ClipItem:
    """One clip, ready for collation."""

    name: str
    frames: Tensor  # (C, T, H, W) float32, normalised
    keypoints: Tensor | None  # (T, K, 3) x, y in input pixels, score
    gloss_ids: list[int]
    gloss: str  # the reference gloss sequence, for scoring


@dataclass(frozen=True)
class ClipBatch:
    """A padded batch; frames and keypoints past a clip's length are zero."""

    names: list[str]
    frames: Tensor  # (B, C, T, H, W)
    lengths: Tensor  # (B,) frames per clip
    keypoints: Tensor | None  # (B, T, K, 3)
    gloss_ids: Tensor  # (B, L) padded with <pad>
    gloss_lengths: Tensor  # (B,)
    glosses: list[str]  # reference gloss sequences

    def to(self, device: torch.device | str, non_blocking: bool = False) -> ClipBatch:
        move = lambda t: None if t is None else t.to(device, non_blocking=non_blocking)  # noqa: E731
        return ClipBatch(
            self.names,
            move(self.frames),
            move(self.lengths),
            move(self.keypoints),
            move(self.gloss_ids),
            move(self.gloss_lengths),
            self.glosses,
        )


def load_vocab(root: str | os.PathLike) -> GlossVocab:
    path = Path(root) / VOCAB_FILE
    if not path.is_file():
        raise SltError(f"{path}: no gloss vocabulary; run `slt data vocab {root}` first")
    return GlossVocab.load(path)


class SignClips(Dataset):
    """The clips of one split; `dataset[i]` for eval, `dataset[(epoch, i)]` augmented."""

    def __init__(
        self, root: str | os.PathLike, split: str, vocab: GlossVocab, options: ClipOptions
    ) -> None:
        self.root, self.split, self.vocab, self.options = Path(root), split, vocab, options
        self.cache = FrameCache(self.root, options.frame_size)
        self.clips = self._usable(load_split(self.root, split))
        self._num_frames: dict[str, int] = {}
        self._keypoint_idx: np.ndarray | None = None
        if options.keypoints is not None:
            self._check_keypoints()

    def _usable(self, clips: list[Clip]) -> list[Clip]:
        """Clips with glosses, in the cache and long enough; the others skipped with a warning."""
        kept = [c for c in clips if c.glosses and c.name in self.cache]
        kept = [c for c in kept if c.num_frames is None or c.num_frames >= MIN_FRAMES]
        if len(kept) < len(clips):
            log.warning(
                "%s: %d of %d clips skipped (no glosses, not in the frames cache, or < %d frames)",
                self.split,
                len(clips) - len(kept),
                len(clips),
                MIN_FRAMES,
            )
        if not kept:
            raise SltError(
                f"{self.root}: no usable clips in '{self.split}'; run `slt data check {self.root}`"
            )
        return kept

    def _check_keypoints(self) -> None:
        missing = [c.name for c in self.clips if not self.keypoint_path(c.name).is_file()]
        if missing:
            raise SltError(
                f"{self.root}: no keypoints for {len(missing)} '{self.split}' clip(s) "
                f"(e.g. {self.keypoint_path(missing[0])}); run `slt data keypoints {self.root}` "
                "(a synthetic corpus has them from `slt data synth`)"
            )

    def keypoint_path(self, name: str) -> Path:
        return self.root / KEYPOINT_DIR / f"{name}.npz"

    def __len__(self) -> int:
        return len(self.clips)

    def num_frames(self, index: int) -> int:
        name = self.clips[index].name
        if name not in self._num_frames:
            self._num_frames[name] = self.cache.num_frames(name)
        return self._num_frames[name]

    def __getitem__(self, key: int | tuple[int, int]) -> ClipItem:
        train = isinstance(key, tuple)
        index = key[1] if train else key
        rng = np.random.default_rng([self.options.seed, key[0], index] if train else [0])
        aug = self.options.augmentation if train and self.options.augmentation.enabled else None
        clip = self.clips[index]
        indices = frame_indices(self.num_frames(index), rng, aug, self.options)
        box = crop_box(self.options.frame_size, rng, aug, self.options.eval_crop)
        rgb = crop_resize(self.cache.load(clip.name, indices), box, self.options.input_size)
        if aug is not None and aug.color_jitter > 0:
            rgb = color_jitter(rgb, rng, aug.color_jitter)
        frames = to_input(rgb, self.options)
        points = None
        if self.options.keypoints is not None:
            points = torch.from_numpy(self._keypoints(clip.name, indices, box))
        return ClipItem(clip.name, frames, points, self.vocab.encode(clip.glosses), clip.gloss)

    def _keypoints(self, name: str, indices: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
        """(T, K, 3) keypoints of the chosen frames, in pixels of the cropped, resized input."""
        with np.load(self.keypoint_path(name), allow_pickle=False) as f:
            points, width, height = f["keypoints"], float(f["width"]), float(f["height"])
        if self._keypoint_idx is None:
            self._keypoint_idx = keypoint_indices(self.options.keypoints, points.shape[1])
        if points.shape[0] <= int(indices.max()):
            raise SltError(
                f"{self.keypoint_path(name)}: {points.shape[0]} frames of keypoints, the video has "
                f"more; re-extract them with `slt data keypoints {self.root}`"
            )
        points = points[indices][:, self._keypoint_idx]
        return box_keypoints(
            points, width, height, box, self.options.frame_size, self.options.input_size
        )


def frame_indices(
    total: int, rng: np.random.Generator, aug: AugmentationConfig | None, options: ClipOptions
) -> np.ndarray:
    """Which cached frames make the clip: every `frame_stride`-th (eval), or resampled at a
    random speed (train, `total / frame_stride / speed` frames); never more than
    `max_frames`, never fewer than `MIN_FRAMES` (or the whole clip when it is shorter)."""
    max_frames, stride = options.augmentation.max_frames, options.frame_stride
    strided = -(-total // stride)  # ceil: frames 0, stride, 2·stride, …
    length = strided
    if aug is not None:
        length = int(round(total / stride / rng.uniform(*aug.speed)))
    length = max(min(length, max_frames), min(total, MIN_FRAMES))
    if length == total:
        return np.arange(total)
    if aug is None and length == strided:
        return np.arange(0, total, stride)
    return np.floor(np.linspace(0, total, length, endpoint=False)).astype(np.int64)


def crop_box(
    size: int, rng: np.random.Generator, aug: AugmentationConfig | None, eval_crop: float
) -> tuple[float, float, float, float]:
    """(x0, y0, width, height) in cached-frame pixels: random area/aspect (train), centre (eval)."""
    if aug is None:
        side = size * eval_crop
        return ((size - side) / 2, (size - side) / 2, side, side)
    area = size * size * rng.uniform(aug.crop_min_area, 1.0)
    aspect = float(np.exp(rng.uniform(np.log(aug.crop_aspect[0]), np.log(aug.crop_aspect[1]))))
    w = min(size, np.sqrt(area * aspect))
    h = min(size, np.sqrt(area / aspect))
    return (rng.uniform(0, size - w), rng.uniform(0, size - h), w, h)


def color_jitter(frames: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation each scaled by a factor in 1 ± strength (whole clip)."""
    x = frames.astype(np.float32)
    b, c, s = rng.uniform(1 - strength, 1 + strength, size=3)
    x = x * b
    x = (x - x.mean()) * c + x.mean()
    grey = x @ np.array([0.299, 0.587, 0.114], np.float32)
    x = (x - grey[..., None]) * s + grey[..., None]
    return np.clip(x, 0, 255).astype(np.uint8)


def to_input(rgb: np.ndarray, options: ClipOptions) -> Tensor:
    """(T, H, W, 3) uint8 → (C, T, H, W) float32: the runtime's `normalise` (one definition)."""
    return torch.from_numpy(normalise(rgb, options)).permute(1, 0, 2, 3).contiguous()


def collate(items: list[ClipItem], pad_id: int = 1) -> ClipBatch:
    """Pad frames, keypoints and gloss ids to the longest clip of the batch; lengths kept."""
    lengths = torch.tensor([item.frames.shape[1] for item in items])
    steps = int(lengths.max())
    frames = torch.zeros((len(items), items[0].frames.shape[0], steps, *items[0].frames.shape[2:]))
    for i, item in enumerate(items):
        frames[i, :, : item.frames.shape[1]] = item.frames
    keypoints = None
    if items[0].keypoints is not None:
        keypoints = torch.zeros((len(items), steps, *items[0].keypoints.shape[1:]))
        for i, item in enumerate(items):
            keypoints[i, : item.keypoints.shape[0]] = item.keypoints
    gloss_lengths = torch.tensor([len(item.gloss_ids) for item in items])
    gloss_ids = torch.full((len(items), max(1, int(gloss_lengths.max()))), pad_id)
    for i, item in enumerate(items):
        gloss_ids[i, : len(item.gloss_ids)] = torch.tensor(item.gloss_ids, dtype=torch.long)
    names, glosses = [i.name for i in items], [i.gloss for i in items]
    return ClipBatch(names, frames, lengths, keypoints, gloss_ids, gloss_lengths, glosses)


class EpochSampler(Sampler):
    """Yields `(epoch, index)` keys in a permutation seeded by (seed, epoch); call
    `set_epoch` before each epoch (Accelerate does for prepared loaders)."""

    def __init__(self, size: int, seed: int, shuffle: bool = True) -> None:
        self.size, self.seed, self.shuffle, self.epoch = size, seed, shuffle, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[tuple[int, int]]:
        order = np.arange(self.size)
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(self.size)
        return iter([(self.epoch, int(i)) for i in order])
