"""The frames cache: round trip, resume, failures recorded, interrupted writes, annotations."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest

from slt_serve.errors import SltError
from slt_serve.video import read_frames
from slt_training.data.annotations import load_split
from slt_training.data.frames import FORMAT, FrameCache, cache_frames, read_clip, write_clip

SIZE = 32


def write_video(path: Path, n: int, seed: int) -> None:
    """64×64 H.264 with a red square and a bar that moves: content that tells frames apart."""
    rng = np.random.default_rng(seed)
    background = rng.integers(60, 120, (8, 8, 3), np.uint8).repeat(8, 0).repeat(8, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        stream.options = {"crf": "12"}
        for i in range(n):
            img = background.copy()
            img[:16, :16] = (255, 0, 0)
            img[32:48, 3 * i : 3 * i + 8] = 255
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img)))
        out.mux(stream.encode())


@pytest.fixture
def dataset(tmp_path) -> Path:
    """train: 3 clips (one in a sub-folder name, one with a known count); dev: 1 clip."""
    for i, n in enumerate((8, 12, 16, 10)):
        write_video(tmp_path / "videos" / f"v{i}.mp4", n, seed=i)
    train = [
        {"name": "a", "text": "eins", "video": "videos/v0.mp4"},
        {"name": "sub/b", "text": "zwei", "video": "videos/v1.mp4", "extra": [1, 2]},
        {"name": "c", "text": "drei", "video": "videos/v2.mp4", "num_frames": 16},
    ]
    dev = [{"name": "d", "text": "vier", "video": "videos/v3.mp4", "num_frames": 99}]
    for split, rows in (("train", train), ("dev", dev)):
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
    return float(10 * np.log10(255**2 / max(mse, 1e-9)))


def test_cache_round_trip_and_annotations(dataset):
    report = cache_frames(dataset, size=SIZE, workers=1, progress=False)
    assert (report.cached, report.skipped, report.failed) == (4, 0, ())
    assert report.filled == 2 and report.mismatched == (("d", 99, 10),)
    cache = FrameCache(dataset, SIZE)
    assert "sub/b" in cache and "zzz" not in cache and "../a" not in cache
    assert (dataset / "frames" / "32" / "sub" / "b.mp4").is_file()
    for name, video, n in (("a", "v0", 8), ("sub/b", "v1", 12), ("d", "v3", 10)):
        got = cache.load(name)
        fresh = read_frames(dataset / "videos" / f"{video}.mp4", size=SIZE)
        assert got.shape == fresh.shape == (n, SIZE, SIZE, 3) and got.dtype == np.uint8
        assert cache.num_frames(name) == n
        assert psnr(got, fresh) > 30  # lossy, but the same pictures
        assert got[:, 2:6, 2:6, 0].min() > 180 and got[:, 2:6, 2:6, 2].max() < 80  # red stays red
    train = {c.name: c for c in load_split(dataset, "train")}
    assert [train[n].num_frames for n in ("a", "sub/b", "c")] == [8, 12, 16]  # filled in
    assert train["sub/b"].model_extra == {"extra": [1, 2]}  # the rest of the line kept
    assert load_split(dataset, "dev")[0].num_frames == 99  # mismatch reported, not overwritten


def test_indices_select_and_repeat_frames(dataset):
    cache_frames(dataset, "train", size=SIZE, workers=1, progress=False)
    cache = FrameCache(dataset, SIZE)
    full = cache.load("c")
    idx = [7, 2, 2, 9]
    assert np.array_equal(cache.load("c", idx), full[idx])
    assert cache.load("c", []).shape == (0, SIZE, SIZE, 3)
    with pytest.raises(SltError, match="indices"):
        cache.load("c", [16])


def test_resume_skips_complete_clips(dataset):
    cache_frames(dataset, size=SIZE, workers=1, progress=False)
    cached = dataset / "frames" / "32" / "a.mp4"
    before = cached.stat().st_mtime_ns
    again = cache_frames(dataset, size=SIZE, workers=1, progress=False)
    assert (again.cached, again.skipped) == (0, 4)
    assert cached.stat().st_mtime_ns == before
    forced = cache_frames(dataset, size=SIZE, workers=1, overwrite=True, progress=False)
    assert forced.cached == 4 and cached.stat().st_mtime_ns != before


def test_corrupt_and_missing_videos_are_recorded_not_fatal(dataset):
    (dataset / "videos" / "v1.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 broken")
    with (dataset / "train.jsonl").open("a") as f:
        f.write(json.dumps({"name": "gone", "video": "videos/nowhere.mp4"}) + "\n")
        f.write(json.dumps({"name": "novideo"}) + "\n")
    report = cache_frames(dataset, size=SIZE, workers=1, progress=False)
    assert report.cached == 3
    assert sorted(e.name for e in report.failed) == ["gone", "novideo", "sub/b"]
    lines = (dataset / "frames" / "32" / "errors.jsonl").read_text().splitlines()
    errors = {e["name"]: e for e in map(json.loads, lines)}
    assert set(errors) == {"gone", "novideo", "sub/b"}
    assert "cannot be read" in errors["sub/b"]["reason"]  # an MP4 without its moov box
    assert errors["sub/b"]["video"] == "videos/v1.mp4" and errors["sub/b"]["split"] == "train"
    assert "no such video" in errors["gone"]["reason"]
    assert "sub/b" not in FrameCache(dataset, SIZE)


def test_interrupted_write_is_not_complete(dataset):
    directory = dataset / "frames" / "32"
    cache_frames(dataset, "dev", size=SIZE, workers=1, progress=False)
    # A crash mid-write leaves only a temp file beside where the clip would go.
    stale = directory / ".a.mp4.x1y2.tmp"
    stale.write_bytes(b"half a clip")
    report = cache_frames(dataset, "train", size=SIZE, workers=1, progress=False)
    assert report.cached == 3 and not stale.exists()
    assert len(FrameCache(dataset, SIZE).load("a")) == 8


def test_failed_encode_leaves_nothing(tmp_path):
    def frames():
        yield np.zeros((SIZE, SIZE, 3), np.uint8)
        raise SltError("decoder gave up halfway")

    target = tmp_path / "clip.mp4"
    with pytest.raises(SltError, match="halfway"):
        write_clip(frames(), target)
    assert list(tmp_path.iterdir()) == []


def test_write_read_clip_is_close_to_input(tmp_path):
    rng = np.random.default_rng(0)
    smooth = rng.integers(0, 255, (6, 4, 4, 3), np.uint8).repeat(8, 1).repeat(8, 2)
    path = tmp_path / "c.mp4"
    assert write_clip(smooth, path, crf=10) == 6
    assert psnr(read_clip(path), smooth) > 35


def test_parallel_workers(dataset):
    report = cache_frames(dataset, size=SIZE, workers=2, progress=False)
    assert report.cached == 4 and not report.failed
    assert FrameCache(dataset, SIZE).num_frames("sub/b") == 12


def test_bad_options_and_other_format(dataset):
    with pytest.raises(SltError, match="even"):
        cache_frames(dataset, size=33, progress=False)
    with pytest.raises(SltError, match="not found"):
        cache_frames(dataset / "nope", progress=False)
    with pytest.raises(SltError, match="slt data frames"):
        FrameCache(dataset, SIZE)
    meta = dataset / "frames" / "32" / "cache.json"
    meta.parent.mkdir(parents=True)
    meta.write_text(json.dumps({"format": "zip-of-jpegs"}))
    with pytest.raises(SltError, match="overwrite"):
        cache_frames(dataset, size=SIZE, progress=False)
    assert cache_frames(dataset, size=SIZE, workers=1, overwrite=True, progress=False).cached == 4
    assert json.loads(meta.read_text())["format"] == FORMAT


def test_cli(dataset):
    cmd = [sys.executable, "-m", "slt_serve.cli", "data", "frames", str(dataset), "--size", "32"]
    r = subprocess.run([*cmd, "--workers", "1"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert "4 cached" in r.stdout and "next: " in r.stdout
    r = subprocess.run([*cmd[:-1], "31"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.startswith("error: ") and "Traceback" not in r.stderr
