"""Frames-cache formats: read speed, size, write time and fidelity, in one run.

Every format stores the same clips: the real webcam clip of a signer from the
pose-format project (../shared/data/poses/signer_webcam_58f.mp4, MIT) resized
to 256², played forward then backward to 116 frames (the mean PHOENIX-2014T
train clip is 116.6 frames), each of the N clips shifted sideways so that no
two are identical. Reads come from the page cache (the files were just
written), so this compares CPU cost, and the size column is what the disk and
the page cache have to hold.

- zip of JPEGs: the reference (TwoStream-SLT keeps a split's frames as JPEGs
  in a zip); one zip per split, opened once, as its loader does.
- JPEG concat: the same JPEGs in one file per clip with an offset index.
- H.264 fastdecode + OpenCV YUV→RGB: `slt_training.data.frames` (ours).
- the same file read through PyAV's own RGB conversion (libswscale), and
  H.264 variants (default tune, intra-only), and raw uint8 .npy.

Reads: all frames; TwoStream-SLT's temporal augmentation (the whole clip
resampled at a random speed in 0.5–1.5, repeats decoded once); 32 random
frames; a random 32-frame crop.
PSNR is against the 256² frames that went in.

    python benchmarks/bench_frames.py [--clips 8] [--repeats 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import zipfile
from pathlib import Path

import av
import cv2
import numpy as np
from rich.console import Console
from rich.table import Table
from shared_data import WEBCAM

from slt_serve.video import read_frames
from slt_training.data.frames import DEFAULT_CRF, read_clip, write_clip

SIZE, JPEG_QUALITY, SUBSET = 256, 90, 32


def make_clips(n: int) -> dict[str, np.ndarray]:
    frames = read_frames(WEBCAM, size=SIZE)
    clip = np.concatenate([frames, frames[::-1]])
    return {f"clip{k:02d}": np.roll(clip, 8 * k, axis=2) for k in range(n)}


def jpeg(rgb: np.ndarray) -> bytes:
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    return cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


def unjpeg(buf) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(buf, np.uint8), cv2.IMREAD_COLOR_RGB)


def expand(idx, decode) -> np.ndarray:
    """Decode each distinct frame once; repeated indices (temporal resampling) are copies."""
    unique, inverse = np.unique(np.asarray(idx), return_inverse=True)
    return np.stack([decode(int(i)) for i in unique])[inverse]


class ZipJpeg:
    """The reference: one zip per split, a JPEG per frame, the zip opened once per reader."""

    label = f"zip of JPEGs q{JPEG_QUALITY} (reference)"

    def __init__(self, d: Path) -> None:
        self.path, self.zip, self.counts = d / "train.zip", None, {}

    def write_all(self, clips: dict[str, np.ndarray]) -> None:
        with zipfile.ZipFile(self.path, "w", zipfile.ZIP_STORED) as z:
            for name, frames in clips.items():
                for i, f in enumerate(frames):
                    z.writestr(f"{name}/{i:06d}.jpg", jpeg(f))
                self.counts[name] = len(frames)

    def read(self, name: str, idx=None) -> np.ndarray:
        if self.zip is None:
            self.zip = zipfile.ZipFile(self.path)
        if idx is None:
            idx = range(self.counts[name])
        return expand(idx, lambda i: unjpeg(self.zip.read(f"{name}/{i:06d}.jpg")))

    def nbytes(self, name: str) -> float:
        return self.path.stat().st_size / len(self.counts)


class PerClip:
    """A format with one file per clip."""

    suffix = ""

    def __init__(self, d: Path) -> None:
        self.dir = d

    def file(self, name: str) -> Path:
        return self.dir / (name + self.suffix)

    def write_all(self, clips: dict[str, np.ndarray]) -> None:
        for name, frames in clips.items():
            self.write(self.file(name), frames)

    def nbytes(self, name: str) -> float:
        return self.file(name).stat().st_size


class JpegConcat(PerClip):
    label = f"JPEG q{JPEG_QUALITY} concat + offset index"
    suffix = ".jpgs"

    def write(self, path: Path, frames: np.ndarray) -> None:
        blobs = [jpeg(f) for f in frames]
        offsets = np.cumsum([0] + [len(b) for b in blobs], dtype=np.int64)
        with path.open("wb") as f:
            f.write(np.int64(len(blobs)).tobytes() + offsets.tobytes() + b"".join(blobs))

    def read(self, name: str, idx=None) -> np.ndarray:
        data = np.fromfile(self.file(name), np.uint8)
        n = int(data[:8].view(np.int64)[0])
        offsets = data[8 : 8 * (n + 2)].view(np.int64) + 8 * (n + 2)
        if idx is None:
            idx = range(n)
        return expand(idx, lambda i: unjpeg(data[offsets[i] : offsets[i + 1]]))


class Ours(PerClip):
    label = f"H.264 fastdecode crf{DEFAULT_CRF} + OpenCV YUV→RGB (ours)"
    suffix = ".mp4"

    def __init__(self, d: Path, crf: int = DEFAULT_CRF) -> None:
        super().__init__(d)
        self.crf = crf
        if crf != DEFAULT_CRF:
            self.label = f"  same, crf{crf}"

    def write(self, path: Path, frames: np.ndarray) -> None:
        write_clip(frames, path, crf=self.crf, threads=1)

    def read(self, name: str, idx=None) -> np.ndarray:
        return read_clip(self.file(name), idx)


class OursSwscale(Ours):
    label = "  same file, PyAV/libswscale RGB"

    def read(self, name: str, idx=None) -> np.ndarray:
        with av.open(str(self.file(name))) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        return np.stack(frames if idx is None else [frames[i] for i in idx])


class X264(OursSwscale):
    """H.264 written the ordinary way (PyAV's RGB→YUV), read with PyAV."""

    def __init__(self, d: Path, label: str, options: dict[str, str]) -> None:
        super().__init__(d)
        self.label, self.options = label, options

    def write(self, path: Path, frames: np.ndarray) -> None:
        with av.open(str(path), "w") as out:
            s = out.add_stream("libx264", rate=25)
            s.width, s.height, s.pix_fmt = SIZE, SIZE, "yuv420p"
            s.options = {"crf": str(DEFAULT_CRF), "preset": "fast", "threads": "1", **self.options}
            for f in frames:
                out.mux(s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
            out.mux(s.encode())


class Npy(PerClip):
    label = "raw uint8 .npy (subset: mmap)"
    suffix = ".npy"

    def write(self, path: Path, frames: np.ndarray) -> None:
        np.save(path, frames)

    def read(self, name: str, idx=None) -> np.ndarray:
        if idx is None:
            return np.load(self.file(name))
        return np.load(self.file(name), mmap_mode="r")[idx]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float32) - b.astype(np.float32)) ** 2)
    return float(10 * np.log10(255**2 / mse)) if mse else float("inf")


def samplings(clips: dict[str, np.ndarray]) -> dict[str, dict[str, np.ndarray | None]]:
    """Frame indices per clip for each way training reads a clip."""
    rng = np.random.default_rng(0)
    out: dict[str, dict] = {
        "all frames": {},
        "speed 0.5–1.5": {},
        "32 random": {},
        "32-frame crop": {},
    }
    for name, clip in clips.items():
        t = len(clip)
        out["all frames"][name] = None
        # TwoStream-SLT's temporal augmentation: the whole clip at a random speed
        n = int(t / rng.uniform(0.5, 1.5))
        out["speed 0.5–1.5"][name] = np.linspace(0, t - 1, n).round().astype(int)
        out["32 random"][name] = np.sort(rng.choice(t, SUBSET, replace=False))
        start = int(rng.integers(0, t - SUBSET + 1))
        out["32-frame crop"][name] = np.arange(start, start + SUBSET)
    return out


def clips_per_s(fmt, indices: dict[str, np.ndarray | None], repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for name, idx in indices.items():
            fmt.read(name, idx)
        best = min(best, time.perf_counter() - t)
    return len(indices) / best


def measure(fmt, clips: dict[str, np.ndarray], repeats: int, schemes) -> dict[str, float]:
    t = time.perf_counter()
    fmt.write_all(clips)
    write_s = (time.perf_counter() - t) / len(clips)
    names = list(clips)
    some = schemes["speed 0.5–1.5"][names[0]]
    assert np.array_equal(fmt.read(names[0], some), fmt.read(names[0])[some]), fmt.label
    speeds = {scheme: clips_per_s(fmt, idx, repeats) for scheme, idx in schemes.items()}
    return {
        "mb": np.mean([fmt.nbytes(n) for n in names]) / 1e6,
        **speeds,
        "write": write_s,
        "psnr": np.mean([psnr(fmt.read(n), clips[n]) for n in names[:2]]),
    }


def formats(d: Path) -> list:
    def sub(name: str) -> Path:
        (d / name).mkdir()
        return d / name

    return [
        ZipJpeg(sub("zip")),
        JpegConcat(sub("jpgs")),
        Ours(sub("ours")),
        *(Ours(sub(f"ours{crf}"), crf=crf) for crf in (14, 17, 20) if crf != DEFAULT_CRF),
        OursSwscale(sub("ours_sws")),
        X264(sub("x264"), f"H.264 crf{DEFAULT_CRF} default tune, PyAV RGB", {}),
        X264(sub("intra"), f"H.264 crf{DEFAULT_CRF} intra-only, PyAV RGB", {"g": "1"}),
        Npy(sub("npy")),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    clips = make_clips(args.clips)
    schemes = samplings(clips)
    table = Table(
        title=f"frames cache formats: {args.clips} clips × {len(next(iter(clips.values())))} frames "
        f"at {SIZE}² (real webcam signer, pose-format, MIT); clips/s read, best of {args.repeats}"
    )
    table.add_column("format")
    for col in ("MB/clip", "× ref", *(f"{s}\n(× ref)" for s in schemes), "write s/clip", "PSNR dB"):
        table.add_column(col, justify="right")
    with tempfile.TemporaryDirectory() as tmp:
        rows = [(f.label, measure(f, clips, args.repeats, schemes)) for f in formats(Path(tmp))]
    ref = rows[0][1]
    for label, r in rows:
        speeds = [f"{r[s]:.1f} ({r[s] / ref[s]:.2f})" for s in schemes]
        size = [f"{r['mb']:.3f}", f"{r['mb'] / ref['mb']:.2f}"]
        table.add_row(label, *size, *speeds, f"{r['write']:.3f}", f"{r['psnr']:.2f}")
    Console(width=170).print(table)
    print(f"PyAV {av.__version__}, OpenCV {cv2.__version__}, JPEG quality {JPEG_QUALITY}")


if __name__ == "__main__":
    main()
