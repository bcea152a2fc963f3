"""Sign clips for S2G: shapes, padding, deterministic augmentation, motion channels, keypoints,
and the one-line refusals when a cache is missing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from slt_serve.errors import SltError
from slt_training.config import AugmentationConfig
from slt_training.data.annotations import load_split
from slt_training.data.frames import cache_frames
from slt_training.data.s2g_data import (
    ClipOptions,
    EpochSampler,
    SignClips,
    collate,
    crop_box,
    frame_indices,
    keypoint_indices,
    load_vocab,
)
from slt_training.data.synth.corpus import generate, options_for
from slt_training.data.vocab import build_vocab

SIZE = 32


def make_corpus(root: Path, clips: int = 12, frames: bool = True) -> Path:
    """A tiny synthetic corpus: videos, keypoints, vocabulary and (optionally) a frames cache."""
    generate(root, options_for("cpu", clips=clips, glosses=16, size=SIZE, signers=2, seed=3))
    build_vocab(load_split(root, "train")).save(root / "gloss_vocab.json")
    if frames:
        cache_frames(root, size=SIZE, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("synth") / "ds")


def clips(root: Path, **kw) -> SignClips:
    options = ClipOptions(frame_size=SIZE, input_size=kw.pop("input_size", SIZE), **kw)
    return SignClips(root, "train", load_vocab(root), options)


def test_eval_item_is_the_whole_clip_normalised(corpus):
    data = clips(corpus)
    item = data[0]
    total = data.num_frames(0)
    assert item.frames.shape == (3, total, SIZE, SIZE) and item.frames.dtype == torch.float32
    assert -1.0 <= float(item.frames.min()) and float(item.frames.max()) <= 1.0
    assert item.keypoints is None
    assert data.vocab.decode(item.gloss_ids) == item.gloss.split()
    assert torch.equal(data[0].frames, item.frames)


def test_augmentation_is_deterministic_per_epoch_and_index(corpus):
    aug = AugmentationConfig(color_jitter=0.3)
    data = clips(corpus, input_size=24, augmentation=aug, seed=7)
    a, b, c = data[(1, 2)], data[(1, 2)], data[(2, 2)]
    assert torch.equal(a.frames, b.frames)
    assert a.frames.shape[2:] == (24, 24)
    assert a.frames.shape != c.frames.shape or not torch.equal(a.frames, c.frames)
    other_seed = clips(corpus, input_size=24, augmentation=aug, seed=8)[(1, 2)]
    assert a.frames.shape != other_seed.frames.shape or not torch.equal(a.frames, other_seed.frames)


def test_speed_and_max_frames():
    rng = np.random.default_rng(0)
    options = ClipOptions(SIZE, SIZE, augmentation=AugmentationConfig(max_frames=40))
    assert len(frame_indices(100, rng, None, options)) == 40  # eval: resampled down only
    assert np.array_equal(frame_indices(30, rng, None, options), np.arange(30))
    aug = AugmentationConfig(speed=(0.5, 0.5), max_frames=400)
    slow = frame_indices(30, rng, aug, ClipOptions(SIZE, SIZE, augmentation=aug))
    assert len(slow) == 60 and slow.max() == 29 and np.all(np.diff(slow) >= 0)
    fast_aug = AugmentationConfig(speed=(1.5, 1.5))
    assert len(frame_indices(30, rng, fast_aug, ClipOptions(SIZE, SIZE))) == 20


def test_frame_stride_keeps_every_nth_frame(corpus):
    rng = np.random.default_rng(0)
    half = ClipOptions(SIZE, SIZE, frame_stride=2)
    assert np.array_equal(frame_indices(95, rng, None, half), np.arange(0, 95, 2))
    steady = AugmentationConfig(speed=(1.0, 1.0))
    assert len(frame_indices(100, rng, steady, ClipOptions(SIZE, SIZE, frame_stride=2))) == 50
    slow = AugmentationConfig(speed=(0.5, 0.5))
    assert len(frame_indices(100, rng, slow, ClipOptions(SIZE, SIZE, frame_stride=2))) == 100
    short = frame_indices(10, rng, None, ClipOptions(SIZE, SIZE, frame_stride=4))
    assert len(short) == 8  # never fewer than MIN_FRAMES
    every, strided = clips(corpus)[0].frames, clips(corpus, frame_stride=2)[0].frames
    assert torch.equal(strided, every[:, ::2])


def test_random_crop_stays_inside_with_the_area_asked():
    rng = np.random.default_rng(1)
    aug = AugmentationConfig(crop_min_area=0.7)
    for _ in range(50):
        x0, y0, w, h = crop_box(64, rng, aug, 1.0)
        assert x0 >= 0 and y0 >= 0 and x0 + w <= 64 + 1e-9 and y0 + h <= 64 + 1e-9
        assert w * h >= 0.7 * 64 * 64 * 0.75  # area kept unless clipped by the frame
    assert crop_box(64, rng, None, 0.5) == (16.0, 16.0, 32.0, 32.0)


def test_motion_channels_are_frame_differences(corpus):
    rgb = clips(corpus)[0].frames
    both = clips(corpus, motion_channels=True)[0].frames
    assert both.shape[0] == 6 and torch.equal(both[:3], rgb)
    assert torch.all(both[3:, 0] == 0)
    assert torch.allclose(both[3:, 1:], rgb[:, 1:] - rgb[:, :-1])


def test_collate_pads_and_keeps_lengths(corpus):
    data = clips(corpus, keypoints="coco_wholebody_79", motion_channels=True)
    items = [data[i] for i in range(3)]
    batch = collate(items)
    lengths = [i.frames.shape[1] for i in items]
    assert batch.lengths.tolist() == lengths
    assert batch.frames.shape == (3, 6, max(lengths), SIZE, SIZE)
    assert batch.keypoints.shape == (3, max(lengths), 79, 3)
    for b, n in enumerate(lengths):
        assert torch.equal(batch.frames[b, :, :n], items[b].frames)
        assert torch.all(batch.frames[b, :, n:] == 0) and torch.all(batch.keypoints[b, n:] == 0)
        g = len(items[b].gloss_ids)
        assert batch.gloss_lengths[b] == g and batch.gloss_ids[b, :g].tolist() == items[b].gloss_ids


def test_keypoints_follow_the_crop(corpus):
    eval_points = clips(corpus, keypoints="all")[0].keypoints  # 133 points, input = frame
    with np.load(corpus / "keypoints" / f"{clips(corpus).clips[0].name}.npz") as f:
        raw = f["keypoints"]
        scale = SIZE / float(f["width"])
    assert eval_points.shape == (raw.shape[0], 133, 3)
    assert np.allclose(eval_points[..., :2].numpy(), raw[..., :2] * scale, atol=1e-4)
    half = clips(corpus, keypoints="all", eval_crop=0.5, input_size=SIZE)[0].keypoints
    expected = (raw[..., :2] * scale - SIZE / 4) * 2  # centre half, blown up 2×
    assert np.allclose(half[..., :2].numpy(), expected, atol=1e-3)


def test_keypoint_subsets():
    assert len(keypoint_indices("coco_wholebody_79", 133)) == 79
    assert len(keypoint_indices("coco_wholebody_63", 133)) == 63
    assert len(keypoint_indices("all", 543)) == 543
    assert keypoint_indices([0, 5], 133).tolist() == [0, 5]
    with pytest.raises(SltError, match="data.keypoints: all"):
        keypoint_indices("coco_wholebody_79", 543)
    with pytest.raises(SltError, match="0..132"):
        keypoint_indices([200], 133)


def test_epoch_sampler_is_a_seeded_permutation_per_epoch():
    sampler = EpochSampler(10, seed=5)
    first = list(sampler)
    assert sorted(i for _, i in first) == list(range(10)) and {e for e, _ in first} == {0}
    assert list(sampler) == first
    sampler.set_epoch(1)
    second = list(sampler)
    assert {e for e, _ in second} == {1} and [i for _, i in second] != [i for _, i in first]


def test_refusals_name_the_command_to_run(corpus, tmp_path):
    options = ClipOptions(frame_size=48, input_size=32)
    vocab = load_vocab(corpus)
    with pytest.raises(SltError, match=r"slt data frames .* --size 48"):
        SignClips(corpus, "train", vocab, options)
    bare = tmp_path / "bare"
    shutil.copytree(corpus, bare, ignore=shutil.ignore_patterns("keypoints", "gloss_vocab.json"))
    with pytest.raises(SltError, match="slt data vocab"):
        load_vocab(bare)
    with pytest.raises(SltError, match="slt data keypoints"):
        SignClips(bare, "train", vocab, ClipOptions(SIZE, SIZE, keypoints="all"))
