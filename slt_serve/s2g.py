"""s2g.onnx at run time: a clip's frames (and keypoints), in windows → gloss log-probs + features.

`S2GRunner.run` owns the recognizer's preprocessing, as S2G training evaluates a
clip (`clip_input`): each frame is resized to the square `frame_size` (a no-op for
frames decoded at that size), cut to the eval centre crop, resized to `input_size`,
and normalised per window (with motion channels, the difference to the frame
before the window); keypoints in pixels of the frame they came with go through the
same geometry. Models imported from TwoStream-SLT are served with the reference's
eval geometry instead (the manifest's `input.geometry`): SingleStream's zero-padded
centre crop, or TwoStream's resize of the whole frame to `input_size`² (bilinear on
float values without antialiasing, kept as float32: rounding to uint8 would move
every value by up to half a level).

A clip of up to `window_frames` frames runs whole, exactly as the export's
parity check ran it. A longer one is cut into cores of `window_frames` frames
(a multiple of the feature stride, 4); each core runs with `context_frames`
more frames on either side, whose outputs are dropped, so the S3D sees real
neighbours at the seams, and the cores' steps are concatenated: T frames give
ceil(T / 4) steps as one run would. Only one window of frames is held at a
time, so memory stays bounded whatever the video's length (at 224² and full
width, about 5.6 MB per frame of window + context while s2g runs; the session
has no memory arena, and glibc's freed heap is trimmed after each window, so that
goes back once the window is done).

An int8 bundle's recogniser comes in two graphs (`slt_export.s2g_stem`): `s2g_stem.onnx`
(normalised frames → the stem's uint8 output) and `s2g.onnx` (that → log-probs and
features). A window's frames are normalised and run through the stem `stem_slice` (4) frames
at a time into one uint8 tensor, so neither the window's float input nor the stem's float
output (the largest tensors, 0.6 and 3.2 MB a frame at 224²) is ever held whole; the
outputs are the one-graph run's, bit for bit.

The windows give the whole clip's outputs: output step j reads frames
4j - 39 … 4j + 39 (S3D's four blocks: the stem's k=7 stride-2 temporal conv,
block 2's k=3, two k=3 inceptions, block 4's k=3 stride-2 pool and five k=3
inceptions; then the visual head's two k=3 convs over steps: a 79-frame
temporal receptive field), so `context_frames` ≥ 39 (exports write 40) covers
it, and the graph's `first_step` input starts each window's positional
encoding at its clip position. On onnxruntime's CPU provider the outputs came
out bitwise equal to one run's on a small model, within 4e-6 on full-size imported
SingleStream and TwoStream bundles (a convolution over another length rounds
differently; docs/coming-from-twostream-slt.md); graphs exported before
`first_step` restart positions at 0 in every window.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable

import numpy as np

from slt_serve.clip_input import center_crop_pad, network_frames, network_keypoints, normalise
from slt_serve.errors import SltError
from slt_serve.manifest import InputSpec
from slt_serve.onnx_session import open_session, release_free_memory
from slt_serve.video import resize, resize_linear

FEATURE_STRIDE = 4  # frames per output step of the 4-block S3D
STEM_GRAPH = "s2g_stem.onnx"  # an int8 recogniser's stem, run a slice of frames at a time
STEM_SLICE = 4  # frames a stem run reads: 4 gave the fastest recogniser of 2/4/8/16 at 224²
# (its output, 3.2 MB a frame, stays in cache; the arena reuses one slice's buffers)


class S2GRunner:
    """The recognizer graph of a bundle, run over whole clips or in windows."""

    def __init__(self, session, spec: InputSpec, stem=None) -> None:
        for name, value in (
            ("window_frames", spec.window_frames),
            ("context", spec.context_frames),
        ):
            if value % FEATURE_STRIDE or value < 0 or (name == "window_frames" and value == 0):
                raise SltError(f"{name} {value} must be a positive multiple of {FEATURE_STRIDE}")
        self.session, self.spec, self.stem = session, spec, stem
        self.input_names = [i.name for i in session.get_inputs()]
        self.two_stream = "keypoints" in self.input_names
        self.source = self.stem.get_outputs()[0].name if stem is not None else "frames"
        self.stem_slice = STEM_SLICE

    @classmethod
    def open(
        cls,
        path: str | os.PathLike,
        spec: InputSpec,
        providers: list[str],
        threads: int = 0,
        stem: str | os.PathLike | None = None,
    ) -> S2GRunner:
        """A session on a bundle's s2g.onnx (and its `STEM_GRAPH`, where the bundle lists
        one), reading what its manifest's `input` says; without onnxruntime's memory arena,
        which would keep the largest window's activations reserved (and, growing by
        doubling, up to twice them) while the text is decoded and after."""
        return cls(
            open_session(path, providers, threads, arena=False),
            spec,
            None if stem is None else open_session(stem, providers, threads),  # its arena
            # reuses one slice's buffers (~60 MB at 224²) instead of faulting in fresh pages
        )

    def prepare(
        self, frame: np.ndarray, keypoints: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """One (H, W, 3) uint8 RGB frame [+ (K_all, 3) keypoints in its pixels] → the
        input_size frame [+ (K, 3) keypoints in input pixels, the bundle's subset], by the
        spec's geometry: uint8, or float32 unrounded for "reference_resize"."""
        spec = self.spec
        if spec.geometry == "reference_center_crop":
            if keypoints is not None:
                raise SltError("the reference_center_crop geometry is for single_stream bundles")
            return center_crop_pad(frame, spec.input_size), None
        points = None
        if keypoints is not None:
            height, width = frame.shape[:2]
            points = network_keypoints(np.asarray(keypoints)[None], width, height, spec)[0]
        if spec.geometry == "reference_resize":
            return resize_linear(frame, spec.input_size), points
        square = resize(frame, spec.frame_size)
        return network_frames(square[None], spec)[0], points

    def run_clip(
        self, frames: np.ndarray, keypoints: np.ndarray | None = None, first_step: int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """(T, C, H, W) normalised frames [+ (T, K, 3) keypoints] → (T', V), (T', D); one run.
        first_step: the clip step of output step 0, where the positional encoding starts
        (graphs exported before it was an input start every run at 0)."""
        if self.stem is not None:
            step = self.stem_slice
            slices = (frames[a : a + step] for a in range(0, len(frames), step))
            return self._run(self._stem(slices, len(frames)), keypoints, first_step)
        return self._run(np.ascontiguousarray(frames, dtype=np.float32), keypoints, first_step)

    def _stem(self, slices: Iterable[np.ndarray], frames: int) -> np.ndarray:
        """Normalised frames, a slice at a time, through s2g_stem.onnx → its uint8 output
        (1, C, T, H', W') for all of them: only one slice's float activations at a time."""
        out, t = None, 0
        for x in slices:
            part = self.stem.run([self.source], {"frames": np.ascontiguousarray(x, np.float32)})[0]
            if out is None:  # the whole window's uint8 tensor, filled slice by slice
                out = np.empty((*part.shape[:2], frames, *part.shape[3:]), part.dtype)
            out[:, :, t : t + part.shape[2]] = part
            t += part.shape[2]
        return out

    def _run(self, source: np.ndarray, keypoints, first_step: int) -> tuple[np.ndarray, np.ndarray]:
        feeds = {self.source: source}
        if "first_step" in self.input_names:
            feeds["first_step"] = np.asarray(first_step, dtype=np.int64)
        if self.two_stream:
            if keypoints is None:
                raise SltError("this two_stream bundle needs keypoints with the frames")
            feeds["keypoints"] = np.ascontiguousarray(keypoints, dtype=np.float32)
        log_probs, features = self.session.run(["log_probs", "features"], feeds)
        return log_probs, features

    def run(
        self,
        items: Iterable[tuple[np.ndarray, np.ndarray | None]],
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """(uint8 RGB frame, keypoints in its pixels or None) per frame → log-probs, features
        and the number of frames; see the module docstring for the preprocessing and windows."""
        window, context = self.spec.window_frames, self.spec.context_frames
        frames: list[np.ndarray] = []
        points: list[np.ndarray | None] = []
        first = 0  # global index of frames[0]
        done = 0  # windows run so far
        pieces: list[tuple[np.ndarray, np.ndarray]] = []
        total = 0
        for frame, kp in items:
            frame, kp = self.prepare(frame, kp)
            frames.append(frame)
            points.append(kp)
            total += 1
            if total >= (done + 1) * window + context:  # window `done` and its context are in
                pieces.append(self._window(done, frames, points, first, total))
                done += 1
                keep = max(0, done * window - context - 1)  # one more for the motion difference
                del frames[: keep - first], points[: keep - first]
                first = keep
        if total == 0:
            raise SltError("the video has no frames")
        while done * window < total:
            pieces.append(self._window(done, frames, points, first, total))
            done += 1
        log_probs = np.concatenate([p[0] for p in pieces])
        features = np.concatenate([p[1] for p in pieces])
        return log_probs, features, total

    def _normalised(self, rgb: np.ndarray, previous: np.ndarray | None) -> Iterable[np.ndarray]:
        """`normalise(rgb, spec, previous)` a `stem_slice` of frames at a time."""
        step = self.stem_slice
        for a in range(0, len(rgb), step):
            x = normalise(rgb[a : a + step], self.spec, previous)
            previous = x[-1, :3]  # the next slice's motion difference starts from it
            yield x

    def _window(self, k, frames, points, first, total) -> tuple[np.ndarray, np.ndarray]:
        window = self.spec.window_frames
        return self.run_core(frames, points, first, k * window, min((k + 1) * window, total), total)

    def run_core(
        self,
        frames: list[np.ndarray],
        points: list[np.ndarray | None],
        first: int,
        core_start: int,
        core_end: int,
        total: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The steps of frames [core_start, core_end) of a clip whose first `total` frames are
        known, run with up to `context_frames` known neighbours each side (their outputs
        dropped). `frames` and `points` (`prepare`d) hold the clip from frame `first` on,
        with the one before the left context when there are motion channels."""
        context = self.spec.context_frames
        start = max(0, core_start - context)
        end = min(core_end + context, total)
        rgb = np.stack(frames[start - first : end - first])
        previous = None
        if start > 0 and self.spec.motion_channels:
            previous = normalise(frames[start - 1 - first][None], self.spec)[0, :3]
        kp = None
        if self.two_stream:
            kp = np.stack(points[start - first : end - first])
        if self.stem is not None:  # normalised a slice at a time: no float copy of the window
            x = self._stem(self._normalised(rgb, previous), len(rgb))
        else:
            x = np.ascontiguousarray(normalise(rgb, self.spec, previous), dtype=np.float32)
        del rgb  # the window's uint8 copy, before the graph's activations
        log_probs, features = self._run(x, kp, start // FEATURE_STRIDE)
        del x
        release_free_memory()  # what the window freed, before the next one or the decoder
        left = (core_start - start) // FEATURE_STRIDE
        steps = math.ceil((core_end - core_start) / FEATURE_STRIDE)
        return log_probs[left : left + steps], features[left : left + steps]
