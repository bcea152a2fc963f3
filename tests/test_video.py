"""slt_serve.video: counts, sizes, colour order, resampling and errors on small generated videos."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from shared_data import REAL_CLIPS, WEBCAM

from slt_serve.errors import SltError
from slt_serve.video import VideoInfo, iter_frames, probe, read_frames


def frame_image(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Black frame with a pure red square top-left and a white bar whose position encodes `i`."""
    img = np.zeros((height, width, 3), np.uint8)
    img[:16, :16] = (255, 0, 0)
    x = 20 + 2 * (i % 20)
    img[24:40, x : x + 4] = 255
    return img


def write_video(
    path: Path, n: int = 16, fps: int = 25, width: int = 64, height: int = 48, rotation: int = 0
) -> Path:
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": "10"}
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(n):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame_image(i, width, height))))
        out.mux(stream.encode())
    return path


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    return write_video(tmp_path_factory.mktemp("video") / "clip.mp4")


def test_probe_counts_and_sizes(video):
    assert probe(video) == VideoInfo(16, 25.0, 64, 48, pytest.approx(0.64, abs=0.05))


def test_read_frames_shape_and_red_is_red(video):
    frames = read_frames(video)
    assert frames.shape == (16, 48, 64, 3) and frames.dtype == np.uint8
    red = frames[:, 2:14, 2:14].reshape(-1, 3).mean(0)
    assert red[0] > 200 and red[1] < 40 and red[2] < 40, red


def test_resize_square_and_tuple(video):
    assert read_frames(video, size=32).shape == (16, 32, 32, 3)
    frames = read_frames(video, size=(24, 40))
    assert frames.shape == (16, 24, 40, 3)
    assert frames[0, 1:7, 1:7, 0].mean() > 200  # the red square scaled with the frame


def test_frames_are_in_order(video):
    frames = read_frames(video)
    bar_x = [int(np.argmax(f[32, :, 1])) for f in frames]  # green channel: only the white bar
    assert bar_x == [20 + 2 * i for i in range(16)]


@pytest.mark.parametrize(
    ("fps", "expected"), [(12.5, list(range(0, 16, 2))), (50, [i // 2 for i in range(32)])]
)
def test_fps_resampling_drops_or_repeats_by_timestamp(video, fps, expected):
    frames = read_frames(video, fps=fps)
    bar_x = [int(np.argmax(f[32, :, 1])) for f in frames]
    assert bar_x == [20 + 2 * i for i in expected]


def test_resampling_to_non_multiple_rate(video):
    frames = read_frames(video, fps=10)  # 0.64 s at 10 fps: times 0.0 … 0.6 → source 0, 2.5, 5, …
    bar_x = [int(np.argmax(f[32, :, 1])) for f in frames]
    assert bar_x == [20 + 2 * i for i in (0, 2, 5, 7, 10, 12, 15)]


def test_max_frames_and_streaming(video):
    assert len(read_frames(video, max_frames=5)) == 5
    it = iter_frames(video, size=16)
    assert next(it).shape == (16, 16, 3)
    assert sum(1 for _ in it) == 15


def test_rotation_flag_is_applied(tmp_path):
    path = write_video(tmp_path / "rot.mp4", n=4, width=64, height=32, rotation=90)
    info = probe(path)
    assert (info.width, info.height) == (32, 64)
    frames = read_frames(path)
    assert frames.shape == (4, 64, 32, 3)
    assert frames[0, -14:, 2:14, 0].mean() > 200  # top-left turned counter-clockwise: bottom-left
    assert read_frames(path, size=(20, 10)).shape == (4, 20, 10, 3)


def test_folder_of_pngs(tmp_path):
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(12):  # natural order: images2 before images10
        cv2.imwrite(str(folder / f"images{i}.png"), cv2.cvtColor(frame_image(i), cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    assert probe(folder, frames_fps=10) == VideoInfo(12, 10, 64, 48, 1.2)
    frames = read_frames(folder)
    assert frames.shape == (12, 48, 64, 3)
    assert np.array_equal(frames[3], frame_image(3))  # PNG is lossless, RGB order kept
    assert read_frames(folder, size=32, fps=12.5).shape == (6, 32, 32, 3)


def test_container_without_frame_count_is_counted_by_decoding(tmp_path):
    path = tmp_path / "clip.mkv"  # Matroska stores no frame count
    write_video(path, n=9)
    with av.open(str(path)) as c:
        assert c.streams.video[0].frames == 0
    assert probe(path).num_frames == 9


def test_truncated_file(video, tmp_path):
    data = video.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(SltError, match="cut.mp4"):
        read_frames(cut)


def test_truncated_after_header(tmp_path):
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as out:  # index first
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
        rng = np.random.default_rng(0)
        for _ in range(16):
            img = rng.integers(0, 255, (64, 64, 3), np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img)))
        out.mux(stream.encode())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SltError, match="truncated"):
        read_frames(path)


def test_text_renamed_mp4(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("these are not the frames you are looking for\n" * 20)
    for fn in (probe, read_frames):
        with pytest.raises(SltError, match="not a readable video"):
            fn(path)


def test_audio_only(tmp_path):
    path = tmp_path / "voice.m4a"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("aac", rate=16000)
        for _ in range(4):
            frame = av.AudioFrame.from_ndarray(
                np.zeros((1, 1024), np.float32), format="fltp", layout="mono"
            )
            frame.sample_rate = 16000
            out.mux(stream.encode(frame))
        out.mux(stream.encode())
    with pytest.raises(SltError, match="no video stream"):
        probe(path)


def test_missing_and_bad_arguments(video, tmp_path):
    with pytest.raises(SltError, match="no such video"):
        read_frames(tmp_path / "absent.mp4")
    with pytest.raises(SltError, match="no image frames"):
        read_frames(tmp_path)
    with pytest.raises(SltError, match="size"):
        read_frames(video, size=0)
    with pytest.raises(SltError, match="fps"):
        read_frames(video, fps=-1)


def test_absurd_resolution(tmp_path):
    folder = tmp_path / "tall"
    folder.mkdir()
    cv2.imwrite(str(folder / "0.png"), np.zeros((9000, 2, 3), np.uint8))
    with pytest.raises(SltError, match="absurd frame size"):
        read_frames(folder)


def test_unreadable_png(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "0.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(SltError, match="not a readable image"):
        probe(folder)


@pytest.mark.skipif(not WEBCAM.is_file(), reason="shared data not present")
def test_real_webcam_clip():
    info = probe(WEBCAM)
    assert (info.num_frames, info.width, info.height) == (58, 540, 720)  # portrait
    assert info.fps == pytest.approx(29.9, abs=0.1)
    frames = read_frames(WEBCAM, size=224)
    assert frames.shape == (58, 224, 224, 3)
    assert 20 < frames.mean() < 235 and frames.std() > 10  # a real picture, not a blank
    assert len(read_frames(WEBCAM, fps=15)) == 29


def test_resize_linear_is_bilinear_on_float_values_without_antialiasing():
    """TwoStream-SLT's eval resize (torchvision 0.10 on tensors), checked against torch's in
    float64 (float32 torch places its samples in float32: up to 4e-3 off on this 0-255 scale)."""
    import torch
    import torch.nn.functional as F

    from slt_serve.video import resize, resize_linear

    rgb = np.random.default_rng(0).integers(0, 256, (260, 210, 3), dtype=np.uint8)
    x = torch.from_numpy(rgb).permute(2, 0, 1)[None].double()
    for h, w in ((224, 224), (130, 105), (300, 420), (97, 61)):  # mixed, halved, grown, shrunk
        expected = F.interpolate(x, (h, w), mode="bilinear", align_corners=False, antialias=False)
        out = resize_linear(rgb, (h, w))
        assert out.dtype == np.float32 and out.shape == (h, w, 3)
        np.testing.assert_allclose(out, expected[0].permute(1, 2, 0).numpy(), atol=1e-4, rtol=0)
    assert np.abs(resize_linear(rgb, 224) - resize(rgb, 224)).max() > 1  # not the area average
    assert np.array_equal(resize_linear(rgb, (260, 210)), rgb)


def test_import_does_not_pull_torch():
    code = "import sys, slt_serve.video; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_write_video_round_trip_reproducible_and_checked(tmp_path):
    from slt_serve.video import write_video

    frames = [frame_image(i, 64, 48) for i in range(10)]
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    assert write_video(a, frames, 25, crf=10, reproducible=True) == 10
    write_video(b, frames, 25, crf=10, reproducible=True)
    assert a.read_bytes() == b.read_bytes()
    back = read_frames(a)
    assert back.shape == (10, 48, 64, 3)
    assert np.abs(back.astype(int) - np.stack(frames)).mean() < 3
    assert probe(a).fps == 25
    with pytest.raises(SltError, match="even H and W"):
        write_video(tmp_path / "odd.mp4", [np.zeros((5, 6, 3), np.uint8)], 25)
    with pytest.raises(SltError, match="no frames"):
        write_video(tmp_path / "none.mp4", [], 25)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4", "b.mp4"]


# --- containers from bytes, limits while decoding, truncation vs approximate counts ---------


@pytest.mark.skipif(not REAL_CLIPS.is_dir(), reason="needs ../shared/data/real-clips")
def test_real_clips_decode_whole_although_some_headers_list_more_frames():
    """A variable-frame-rate phone clip lists 70 frames and decodes 69 with every packet
    intact: an approximate count, not a truncation."""
    for path in sorted(p for p in REAL_CLIPS.iterdir() if p.suffix in (".mp4", ".mov")):
        frames = sum(1 for _ in iter_frames(path, size=32))
        assert frames > 0, path.name


def test_cut_files_are_still_truncated_at_every_cut(tmp_path):
    data = (write_video(tmp_path / "whole.mp4", n=24)).read_bytes()
    fast = tmp_path / "fast.mp4"
    with av.open(str(fast), "w", options={"movflags": "faststart"}) as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(24):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")))
        out.mux(stream.encode())
    # the index at the end: a cut loses it (a 1 % cut only trims metadata after the frames'
    # index, and that file still decodes whole); the index first: a cut loses frames
    for source, fracs in ((data, (0.3, 0.6, 0.9)), (fast.read_bytes(), (0.3, 0.6, 0.9, 0.99))):
        for frac in fracs:
            cut = tmp_path / "cut.mp4"
            cut.write_bytes(source[: int(len(source) * frac)])
            with pytest.raises(SltError, match="truncated") as e:
                read_frames(cut)
            assert "Invalid data" not in str(e.value) and "End of file" not in str(e.value)


def test_playlists_lists_and_text_are_never_opened_whatever_their_name(tmp_path):
    """HLS naming a local file, an ffconcat list, a text file: refused from their bytes;
    the file they name is never read (atime-free check: it is made unreadable)."""
    secret = write_video(tmp_path / "secret.mp4")
    secret.chmod(0)
    hls = f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:1,\n{secret}\n#EXT-X-ENDLIST\n"
    cases = {
        "x.m3u8": hls,
        "y.mp4": hls.replace(str(secret), f"file://{secret}"),
        "list.ffconcat": f"ffconcat version 1.0\nfile '{secret}'\n",
        "art.ans": "\x1b[31mHELLO\x1b[0m\n" * 40,
        "notes.txt": "just text\n" * 40,
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        for fn in (probe, read_frames):
            with pytest.raises(SltError, match="not a readable video"):
                fn(path)


def test_decoding_stops_at_the_first_frame_past_a_limit(tmp_path):
    from slt_serve.video import DecodeLimits, VideoError, decode_limits

    path = tmp_path / "v.mkv"
    with av.open(str(path), "w", format="matroska") as out:  # Matroska keeps no frame count
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for i in range(100):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(frame_image(i), format="rgb24")))
        out.mux(stream.encode())
    assert probe(path).num_frames == 100  # counted from packets, nothing decoded
    for limits, code in [
        (DecodeLimits(max_frames=10), "too_many_frames"),
        (DecodeLimits(max_seconds=0.5), "too_long"),
        (DecodeLimits(max_pixels=64 * 47), "too_many_pixels"),
    ]:
        got = 0
        with decode_limits(limits), pytest.raises(VideoError) as e:
            for _ in iter_frames(path):
                got += 1
        assert e.value.code == code
        assert got <= 13  # 10 frames, or 0.5 s at 25 fps (12 frames + 1)
        with decode_limits(limits), pytest.raises(VideoError):
            probe(path)  # the packet count stops there too (pixels: the first frame)
