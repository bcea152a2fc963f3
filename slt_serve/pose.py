"""Whole-body keypoints from video with pose.onnx: onnxruntime and numpy, no torch.

Top-down, as mmpose runs HRNet, with the signer box taken from the keypoints
already found instead of a person detector (sign videos show one centred signer):

    frames ──box──▶ affine crop (the model's input, 384×288) ──pose.onnx──▶ heatmaps
           ──argmax + DARK refinement──▶ heatmap coordinates ──inverse affine──▶ frame pixels

Box: from the confident keypoints of the latest frame already estimated (with
`batch_size` frames per run, the last frame of the previous batch), widened to
the model's aspect ratio and padded by 1.25 as mmpose pads a detection; the full
frame when there are too few confident points (the first frame, a signer out of view).

Conventions are mmpose's, so its checkpoints give the keypoints they were
trained for: the box centre maps to the centre of the crop, heatmap pixel i
lies at input pixel 4·i, and DARK (Zhang et al. 2020, "Distribution-Aware
Coordinate Representation") refines each peak with one Newton step on the
log of the Gaussian-blurred heatmap (blur kernel 11). The score of a point is
its heatmap maximum.

pose.onnx (written by `slt export pose`) takes uint8 RGB crops (N, H, W, 3),
normalises inside, and returns float32 heatmaps (N, K, H/4, W/4); its metadata
(`slt_pose`, JSON) names the input size, keypoint layout and DARK kernel.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from slt_serve.errors import SltError
from slt_serve.onnx_session import intra_op_threads

log = logging.getLogger(__name__)

METADATA_KEY = "slt_pose"  # ONNX metadata entry holding the `PoseModelSpec` as JSON
INPUT_NAME = "frames"  # uint8 (N, H, W, 3) RGB crops
OUTPUT_NAME = "heatmaps"  # float32 (N, K, H/stride, W/stride)
BOX_PADDING = 1.25  # mmpose's top-down padding of a person box
MIN_LOG = 1e-10  # heatmap floor before the log (mmpose's)


@dataclass(frozen=True)
class PoseModelSpec:
    """What pose.onnx expects and returns, from its metadata."""

    input_size: tuple[int, int]  # (height, width) of a crop
    num_keypoints: int  # K heatmaps
    layout: str  # keypoint order, a name in `slt_serve.layouts` (coco_wholebody_133)
    heatmap_stride: int = 4  # input pixels per heatmap pixel
    blur_kernel: int = 11  # DARK's Gaussian blur kernel (odd); 0 turns refinement off

    @property
    def heatmap_size(self) -> tuple[int, int]:
        return self.input_size[0] // self.heatmap_stride, self.input_size[1] // self.heatmap_stride

    @property
    def aspect(self) -> float:
        """width / height of the crop."""
        return self.input_size[1] / self.input_size[0]

    def to_json(self) -> str:
        return json.dumps(
            {
                "input_size": list(self.input_size),
                "num_keypoints": self.num_keypoints,
                "layout": self.layout,
                "heatmap_stride": self.heatmap_stride,
                "blur_kernel": self.blur_kernel,
            }
        )

    @classmethod
    def from_json(cls, text: str) -> PoseModelSpec:
        d = json.loads(text)
        return cls(
            tuple(d["input_size"]),
            d["num_keypoints"],
            d["layout"],
            d["heatmap_stride"],
            d["blur_kernel"],
        )


@dataclass(frozen=True)
class PoseOptions:
    """How frames are estimated; defaults follow mmpose's top-down HRNet."""

    batch_size: int = 16  # frames per onnxruntime run
    box_padding: float = BOX_PADDING  # box side = keypoint extent × this
    box_min_score: float = 0.3  # keypoints this confident make the next box
    box_min_points: int = 8  # fewer confident keypoints: the full frame instead
    blur_kernel: int | None = None  # DARK blur kernel; None: the model's; 0: no refinement
    providers: tuple[str, ...] | None = None  # onnxruntime providers; None: CUDA when present
    threads: int = 0  # onnxruntime intra-op threads (0: OMP_NUM_THREADS if set, else every core)

    def __post_init__(self) -> None:
        for name in ("batch_size", "box_padding"):
            if getattr(self, name) < 1:
                raise SltError(f"{name}={getattr(self, name)}: must be at least 1")
        if self.blur_kernel and self.blur_kernel % 2 == 0:  # None and 0 are allowed
            raise SltError(f"blur_kernel={self.blur_kernel}: must be odd (or 0 for no DARK)")


@dataclass(frozen=True, slots=True)  # one per frame estimated
class Box:
    """A crop region in frame pixels, with the model's aspect ratio."""

    cx: float
    cy: float
    width: float
    height: float


@dataclass(frozen=True)
class PoseSequence:
    """Keypoints of a video: (T, K, 3) float32 x, y in pixels and score, with its frame geometry."""

    keypoints: np.ndarray
    fps: float
    width: int
    height: int


# --- boxes and crops ------------------------------------------------------------------------


def aspect_box(cx: float, cy: float, w: float, h: float, aspect: float, padding: float) -> Box:
    """mmpose's `_xywh2cs`: widen the short side to `aspect` (w / h), then scale by `padding`."""
    if w > aspect * h:
        h = w / aspect
    else:
        w = h * aspect
    return Box(float(cx), float(cy), float(w * padding), float(h * padding))


def full_frame_box(width: int, height: int, aspect: float, padding: float = 1.0) -> Box:
    """The whole frame, widened to the crop's aspect ratio."""
    return aspect_box(width * 0.5, height * 0.5, float(width), float(height), aspect, padding)


def box_from_keypoints(
    keypoints: np.ndarray,
    aspect: float,
    options: PoseOptions = PoseOptions(),
    frame_size: tuple[int, int] | None = None,
) -> Box | None:
    """A box around the confident keypoints (K, 3), clipped to the (width, height) frame when
    given, or None when there are too few."""
    sure = keypoints[keypoints[:, 2] >= options.box_min_score, :2]
    sure = sure[np.isfinite(sure).all(axis=1)]
    if frame_size is not None:  # points off the frame cannot widen the box beyond it
        sure = np.clip(sure, 0, frame_size)
    if len(sure) < options.box_min_points:
        return None
    (x0, y0), (x1, y1) = sure.min(axis=0), sure.max(axis=0)
    w, h = max(x1 - x0, 1.0), max(y1 - y0, 1.0)
    cx, cy = x0 + (x1 - x0) * 0.5, y0 + (y1 - y0) * 0.5
    return aspect_box(cx, cy, w, h, aspect, options.box_padding)


def crop_transform(box: Box, input_size: tuple[int, int]) -> np.ndarray:
    """The 2×3 affine from frame pixels to crop pixels: box centre → crop centre, box → crop."""
    in_h, in_w = input_size
    scale = in_w / box.width  # the same down both axes: the box has the crop's aspect
    return np.array(
        [[scale, 0.0, in_w * 0.5 - scale * box.cx], [0.0, scale, in_h * 0.5 - scale * box.cy]],
        dtype=np.float64,
    )


def crop(frame: np.ndarray, box: Box, input_size: tuple[int, int]) -> np.ndarray:
    """The box cut out of an (H, W, 3) frame, resized to `input_size`; black outside the frame."""
    in_h, in_w = input_size
    return cv2.warpAffine(
        frame,
        crop_transform(box, input_size),
        (in_w, in_h),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )


def heatmap_to_frame(
    coords: np.ndarray, boxes: list[Box], heatmap_size: tuple[int, int]
) -> np.ndarray:
    """Heatmap coordinates (N, K, 2) → frame pixels, each row through its own box (mmpose's
    `transform_preds`: x = hx · box_w / heatmap_w + cx − box_w / 2)."""
    hm_h, hm_w = heatmap_size
    out = np.empty_like(coords, dtype=np.float32)
    for n, box in enumerate(boxes):
        out[n, :, 0] = coords[n, :, 0] * (box.width / hm_w) + box.cx - box.width * 0.5
        out[n, :, 1] = coords[n, :, 1] * (box.height / hm_h) + box.cy - box.height * 0.5
    return out


# --- heatmap decoding -----------------------------------------------------------------------


def decode_heatmaps(heatmaps: np.ndarray, blur_kernel: int = 11) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, h, w) heatmaps → (N, K, 2) x, y in heatmap pixels and (N, K) scores (the maxima).

    The integer argmax is refined by DARK when `blur_kernel` > 0; a map whose
    maximum is not positive scores 0.
    """
    hm = np.asarray(heatmaps, dtype=np.float32)
    n, k, h, w = hm.shape
    flat = hm.reshape(n, k, h * w)
    idx = flat.argmax(axis=2)
    scores = np.take_along_axis(flat, idx[..., None], axis=2)[..., 0]
    coords = np.stack([idx % w, idx // w], axis=-1).astype(np.float32)
    if blur_kernel:
        coords = _dark(hm, coords, blur_kernel)
    return coords, np.maximum(scores, 0.0).astype(np.float32)


def _blur_modulated(hm: np.ndarray, kernel: int) -> np.ndarray:
    """Gaussian-blur each map with zero padding, rescaled to keep its maximum (DARK's modulation).

    All maps go through one OpenCV call, stacked with `kernel // 2` zero rows and
    columns around each, so no map's blur reaches into the next.
    """
    n, k, h, w = hm.shape
    b = kernel // 2
    padded = np.zeros((n * k, h + 2 * b, w + 2 * b), np.float32)
    padded[:, b : b + h, b : b + w] = hm.reshape(n * k, h, w)
    tall = padded.reshape(n * k * (h + 2 * b), w + 2 * b)
    blurred = cv2.GaussianBlur(tall, (kernel, kernel), 0, borderType=cv2.BORDER_CONSTANT)
    out = blurred.reshape(n * k, h + 2 * b, w + 2 * b)[:, b : b + h, b : b + w]
    out = out.reshape(n, k, h, w)
    before = hm.reshape(n, k, -1).max(axis=2)
    after = out.reshape(n, k, -1).max(axis=2)
    ratio = np.divide(before, after, out=np.ones_like(before), where=after != 0)
    return out * ratio[..., None, None]


def _dark(hm: np.ndarray, coords: np.ndarray, kernel: int) -> np.ndarray:
    """One Newton step on log(blurred heatmap) at each integer peak (mmpose's `_taylor`).

    Unlike mmpose, a step is taken only where the log map is concave (a true
    maximum) and moves at most one heatmap pixel: an untrained or confused model's
    flat maps otherwise send points far outside the crop.
    """
    n, k, h, w = hm.shape
    logs = np.log(np.maximum(_blur_modulated(hm, kernel), MIN_LOG))
    px, py = coords[..., 0].astype(np.int64), coords[..., 1].astype(np.int64)
    inside = (px > 1) & (px < w - 2) & (py > 1) & (py < h - 2)
    px, py = np.where(inside, px, 2), np.where(inside, py, 2)
    ni, ki = np.meshgrid(np.arange(n), np.arange(k), indexing="ij")

    def at(dy: int, dx: int) -> np.ndarray:
        return logs[ni, ki, py + dy, px + dx]

    centre = at(0, 0)
    dx = 0.5 * (at(0, 1) - at(0, -1))
    dy = 0.5 * (at(1, 0) - at(-1, 0))
    dxx = 0.25 * (at(0, 2) - 2 * centre + at(0, -2))
    dyy = 0.25 * (at(2, 0) - 2 * centre + at(-2, 0))
    dxy = 0.25 * (at(1, 1) - at(-1, 1) - at(1, -1) + at(-1, -1))
    det = dxx * dyy - dxy**2
    ok = inside & (det > 0) & (dxx < 0)  # a maximum: the Newton step points to the peak
    safe = np.where(ok, det, 1.0)
    offset_x = np.clip(-(dyy * dx - dxy * dy) / safe, -1.0, 1.0)
    offset_y = np.clip(-(dxx * dy - dxy * dx) / safe, -1.0, 1.0)
    out = coords.copy()
    out[..., 0] += np.where(ok, offset_x, 0.0)
    out[..., 1] += np.where(ok, offset_y, 0.0)
    return out


# --- the estimator --------------------------------------------------------------------------


def default_providers() -> list[str]:
    """CUDA first when this onnxruntime build has it, the CPU always."""
    import onnxruntime as ort

    available = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]


class PoseEstimator:
    """pose.onnx in an onnxruntime session. Keeps no per-video state: one instance serves
    concurrent calls (the box of the next frames lives in each call's generator)."""

    def __init__(self, model: str | os.PathLike, options: PoseOptions = PoseOptions()) -> None:
        import onnxruntime as ort

        path = Path(model)
        if not path.is_file():
            raise SltError(f"{path}: no pose model there; make one with `slt export pose CKPT`")
        so = ort.SessionOptions()
        so.intra_op_num_threads = intra_op_threads(options.threads)
        so.log_severity_level = 3
        providers = list(options.providers) if options.providers else default_providers()
        try:
            self.session = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own untyped errors
            raise SltError(f"{path}: onnxruntime cannot load it ({e}); re-export it") from None
        self.spec = _read_spec(self.session, path)
        self.options = options
        self.blur_kernel = (
            self.spec.blur_kernel if options.blur_kernel is None else options.blur_kernel
        )
        log.info("pose model %s: %s on %s", path, self.spec, self.session.get_providers()[0])

    def heatmaps(self, crops: np.ndarray) -> np.ndarray:
        """uint8 (N, H, W, 3) crops → float32 (N, K, h, w) heatmaps."""
        return self.session.run([OUTPUT_NAME], {INPUT_NAME: np.ascontiguousarray(crops)})[0]

    def estimate_frames(self, frames: list[np.ndarray], boxes: list[Box]) -> np.ndarray:
        """Keypoints (N, K, 3) of frames, each cropped by its box."""
        crops = np.stack([crop(f, b, self.spec.input_size) for f, b in zip(frames, boxes)])
        coords, scores = decode_heatmaps(self.heatmaps(crops), self.blur_kernel)
        xy = heatmap_to_frame(coords, boxes, self.spec.heatmap_size)
        return np.concatenate([xy, scores[..., None]], axis=-1)

    def estimate(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """(K, 3) keypoints per (H, W, 3) RGB frame, in order, `batch_size` frames per run."""
        previous: np.ndarray | None = None
        batch: list[np.ndarray] = []
        for frame in frames:
            batch.append(frame)
            if len(batch) == self.options.batch_size:
                yield from (previous := self._batch(batch, previous))
                batch = []
        if batch:
            yield from self._batch(batch, previous)

    def _batch(self, frames: list[np.ndarray], previous: np.ndarray | None) -> np.ndarray:
        h, w = frames[0].shape[:2]
        box = (
            None
            if previous is None
            else box_from_keypoints(previous[-1], self.spec.aspect, self.options, (w, h))
        )
        if box is None:
            box = full_frame_box(w, h, self.spec.aspect)
        return self.estimate_frames(frames, [box] * len(frames))

    def estimate_video(self, path: str | os.PathLike) -> PoseSequence:
        """Every frame of a video file (or folder of frames) → `PoseSequence`."""
        from slt_serve.video import iter_frames, probe

        info = probe(path)
        points = list(self.estimate(iter_frames(path)))
        keypoints = np.stack(points).astype(np.float32)
        return PoseSequence(keypoints, info.fps, info.width, info.height)


def _read_spec(session, path: Path) -> PoseModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise SltError(
            f"{path}: not a pose model written by `slt export pose` (no '{METADATA_KEY}' "
            "metadata); export your checkpoint with `slt export pose CKPT --out pose.onnx`"
        )
    inputs = [i.name for i in session.get_inputs()]
    if inputs != [INPUT_NAME]:
        raise SltError(f"{path}: expected one input '{INPUT_NAME}', found {inputs}; re-export it")
    return PoseModelSpec.from_json(meta[METADATA_KEY])
