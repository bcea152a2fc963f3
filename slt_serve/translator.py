"""`Translator`: a bundle's ONNX graphs turned into video → glosses → text, without torch.

    translator = Translator.from_bundle("bundle/")          # verifies hashes, picks CUDA/CPU
    result = translator.translate("clip.mp4")               # Result(gloss, text, gloss_spans, …)
    result = translator.translate_frames(rgb, fps=25.0)     # (T, H, W, 3) uint8 RGB
    result = translator.translate_gloss("REGEN MORGEN")     # G2T bundles

The video path: decode (PyAV) at the manifest's fps → [pose, TwoStream] → the
training's eval crop, resize and normalisation (`clip_input`) → s2g.onnx in
windows (`s2g`) → CTC decoding (greedy, or prefix beam search when the
manifest's `ctc_beam_size` > 1) with each gloss's time span → encoder.onnx →
beam search over decoder.onnx with its key/value cache (`beam_search`) →
detokenise. An input whose features are longer than the translation model's
positions is translated in segments cut where the recogniser is most sure of
a pause (blank), and the texts joined.

One `Translator` holds one onnxruntime session per graph and no per-call state,
so it can serve concurrent calls (onnxruntime sessions are thread-safe for `run`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

import numpy as np

from slt_serve import video as video_io
from slt_serve.beam_search import BeamSettings
from slt_serve.bundle import (
    DECODER,
    ENCODER,
    GLOSS_VOCAB,
    POSE,
    S2G,
    TOKENIZER,
    Bundle,
    load_bundle,
)
from slt_serve.clip_input import InputSpec, network_frames, network_keypoints
from slt_serve.decoding import ctc_decode_spans
from slt_serve.errors import SltError
from slt_serve.onnx_session import open_session, providers_for
from slt_serve.s2g import FEATURE_STRIDE, S2GRunner
from slt_serve.seq2seq import CacheShape, Seq2Seq
from slt_serve.vocab import GlossVocab

log = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 300.0  # longest video translated; longer ones are refused
BLANK_ID = 0
STAGE_TIMINGS = ("decode", "pose", "s2g", "ctc", "encoder", "decoder")  # + "total"


@dataclass(frozen=True)
class GlossSpan:
    """One recognised gloss and the time it was signed, in seconds from the video start."""

    gloss: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Result:
    """What one translation produced."""

    gloss: str  # space-separated glosses ('' for a G2T bundle input)
    text: str  # the translation ('' for an S2G bundle)
    gloss_spans: list[GlossSpan]  # one per gloss of `gloss`, in order
    duration_s: float  # of the input video (0 for gloss input)
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode, pose, s2g, …, total
    model: str = ""  # the bundle's name from its manifest

    def to_dict(self) -> dict:
        """JSON-ready: plain dicts, lists, strings and floats."""
        return asdict(self)


class _Clock:
    """Milliseconds spent per stage of one call."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.ms: dict[str, float] = dict.fromkeys(STAGE_TIMINGS, 0.0)

    def add(self, stage: str, seconds: float) -> None:
        self.ms[stage] = self.ms.get(stage, 0.0) + 1000.0 * seconds

    def timed(self, stage: str, items: Iterator) -> Iterator:
        """`items`, with the time spent producing them added to `stage`."""
        while True:
            t = time.perf_counter()
            try:
                item = next(items)
            except StopIteration:
                self.add(stage, time.perf_counter() - t)
                return
            self.add(stage, time.perf_counter() - t)
            yield item

    def done(self) -> dict[str, float]:
        self.ms["total"] = 1000.0 * (time.perf_counter() - self.start)
        return {k: round(v, 2) for k, v in self.ms.items()}


class Translator:
    """A loaded bundle; see the module docstring. Build it with `from_bundle`."""

    kind: str  # single_stream | two_stream | g2t
    stage: str  # s2t | g2t | s2g
    provider: str  # onnxruntime provider of the graphs, e.g. "CPUExecutionProvider"
    manifest: dict

    def __init__(
        self,
        bundle: Bundle,
        providers: list[str],
        max_seconds: float,
        beam_size: int | None,
        ctc_beam_size: int | None,
        threads: int,
        pose: str | os.PathLike | None,
    ) -> None:
        m = bundle.manifest
        self.bundle, self.manifest = bundle, m
        self.kind, self.stage, self.name = bundle.kind, bundle.stage, bundle.name
        if not max_seconds > 0:
            raise SltError(f"max_seconds must be positive, got {max_seconds}")
        self.max_seconds = float(max_seconds)
        self.spec = InputSpec.from_manifest(m["input"]) if m.get("input") else None
        self.vocab = GlossVocab.load(bundle.file(GLOSS_VOCAB)) if bundle.has(GLOSS_VOCAB) else None
        recognition = m.get("recognition") or {}
        self.ctc_beam_size = int(ctc_beam_size or recognition.get("ctc_beam_size", 1))
        self.s2g = None
        if bundle.has(S2G):
            self.s2g = S2GRunner(open_session(bundle.file(S2G), providers, threads), self.spec)
        self.seq2seq = self.tokenizer = self.generation = None
        if self.stage in ("s2t", "g2t"):
            from slt_serve.tokenizer import TextTokenizer

            t = m["translation"]
            self.seq2seq = Seq2Seq(
                open_session(bundle.file(ENCODER), providers, threads),
                open_session(bundle.file(DECODER), providers, threads),
                CacheShape(t["decoder_layers"], t["heads"], t["head_dim"]),
                int(t["max_source_positions"]),
            )
            self.tokenizer = TextTokenizer.load(bundle.file(TOKENIZER))
            g = m["generation"]
            self.generation = BeamSettings(
                num_beams=int(beam_size or g["num_beams"]),
                length_penalty=float(g["length_penalty"]),
                max_length=int(g["max_length"]),
                decoder_start_id=int(g["decoder_start_token_id"]),
                eos_id=int(g["eos_token_id"]),
                pad_id=int(g["pad_token_id"]),
                forced_eos=bool(g.get("forced_eos", True)),
            )
        first = self.s2g.session if self.s2g else self.seq2seq.encoder
        self.provider = first.get_providers()[0]
        self.pose = None
        if self.kind == "two_stream":
            path = pose if pose is not None else (bundle.file(POSE) if bundle.has(POSE) else None)
            if path is not None:
                self.pose = self._load_pose(path, providers, threads)
        log.info("bundle %s (%s, %s) on %s", self.name, self.kind, self.stage, self.provider)

    @classmethod
    def from_bundle(
        cls,
        path: str | os.PathLike,
        device: str = "auto",
        max_seconds: float = DEFAULT_MAX_SECONDS,
        beam_size: int | None = None,
        *,
        ctc_beam_size: int | None = None,
        threads: int = 0,
        pose: str | os.PathLike | None = None,
        verify: bool = True,
    ) -> Translator:
        """Load and verify a bundle folder.

        device: "auto" (CUDA when onnxruntime has it), "cuda" or "cpu". beam_size:
        text beam width, ctc_beam_size: gloss beam width (None: the manifest's).
        threads: onnxruntime intra-op threads (0: its default). pose: a pose.onnx for
        a two_stream bundle that does not include one. verify: check every file's
        sha256 (sizes are always checked).
        """
        if beam_size is not None and beam_size < 1:
            raise SltError(f"beam_size must be at least 1, got {beam_size}")
        if ctc_beam_size is not None and ctc_beam_size < 1:
            raise SltError(f"ctc_beam_size must be at least 1, got {ctc_beam_size}")
        bundle = load_bundle(path, verify=verify)
        providers = providers_for(device)
        return cls(bundle, providers, max_seconds, beam_size, ctc_beam_size, threads, pose)

    def _load_pose(self, path, providers, threads):
        from slt_serve.pose import PoseEstimator, PoseOptions

        estimator = PoseEstimator(path, PoseOptions(providers=tuple(providers), threads=threads))
        layout = self.spec.keypoint_layout
        if layout and estimator.spec.layout != layout:
            raise SltError(
                f"{path}: pose model gives {estimator.spec.layout} keypoints, the bundle reads "
                f"{layout}; give a matching pose.onnx"
            )
        return estimator

    # --- inputs ------------------------------------------------------------------------------

    def translate(self, video: str | os.PathLike) -> Result:
        """A video file (or a folder of frames) → glosses and text."""
        self._need_video()
        clock = _Clock()
        t = time.perf_counter()
        info = video_io.probe(video)
        clock.add("decode", time.perf_counter() - t)
        self._check_duration(info.duration_s)
        spec = self.spec
        limit = int(math.ceil(self.max_seconds * spec.fps)) + 1
        if self.kind == "two_stream":
            frames = video_io.iter_frames(video, fps=spec.fps, max_frames=limit + 1)
            items = self._with_pose(clock.timed("decode", frames), clock)
        else:
            frames = video_io.iter_frames(
                video, size=spec.frame_size, fps=spec.fps, max_frames=limit + 1
            )
            items = ((f, None) for f in clock.timed("decode", frames))
        return self._recognise(self._limited(items, limit), info.duration_s, clock)

    def translate_frames(
        self, frames: np.ndarray, fps: float, keypoints: np.ndarray | None = None
    ) -> Result:
        """(T, H, W, 3) uint8 RGB frames at `fps` → glosses and text.

        keypoints: for a two_stream bundle without a pose model, (T, K, 3) x, y in
        pixels of these frames and score, in the bundle's keypoint layout.
        """
        self._need_video()
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise SltError(
                f"frames must be (T, H, W, 3) uint8 RGB, got {frames.shape} {frames.dtype}"
            )
        if not 0 < fps <= 1000:
            raise SltError(f"fps={fps}: the frame rate must be in (0, 1000]")
        if len(frames) == 0:
            raise SltError("no frames to translate")
        if keypoints is not None and np.shape(keypoints)[:1] != frames.shape[:1]:
            raise SltError(f"keypoints must be (T, K, 3) with T = {len(frames)}")
        clock = _Clock()
        duration = len(frames) / fps
        self._check_duration(duration)
        spec = self.spec
        height, width = frames.shape[1:3]
        picked = list(video_io.resample(((i / fps, i) for i in range(len(frames))), fps, spec.fps))
        order = [i for i, repeats in picked for _ in range(repeats)]
        if self.kind == "two_stream" and keypoints is None:
            items = self._with_pose((frames[i] for i in order), clock)
        else:
            points = None
            if keypoints is not None:
                points = network_keypoints(np.asarray(keypoints)[order], width, height, spec)
            items = (
                (
                    video_io.resize(frames[i], spec.frame_size),
                    None if points is None else points[n],
                )
                for n, i in enumerate(order)
            )
        return self._recognise(items, duration, clock)

    def translate_gloss(self, gloss: str) -> Result:
        """A space-separated gloss sequence → text (G2T bundles)."""
        if self.stage != "g2t":
            raise SltError(
                f"bundle {self.name} is {self.stage}: it reads video, not glosses; "
                "use translate() or a G2T bundle"
            )
        glosses = gloss.split()
        if not glosses:
            raise SltError("no glosses to translate; give a space-separated gloss sequence")
        clock = _Clock()
        ids = np.asarray([self.tokenizer.source_ids(glosses)], dtype=np.int64)
        text = self._translate_source(ids, clock)
        return Result("", text, [], 0.0, clock.done(), self.name)

    # --- the pipeline -----------------------------------------------------------------------

    def _need_video(self) -> None:
        if self.stage == "g2t":
            raise SltError(
                f"bundle {self.name} is G2T: it translates glosses; use translate_gloss()"
            )

    def _check_duration(self, seconds: float) -> None:
        if seconds > self.max_seconds:
            raise SltError(
                f"the video is {seconds:.1f} s long, over the {self.max_seconds:g} s limit; "
                "cut it into shorter clips or raise max_seconds"
            )

    def _limited(self, items: Iterator, limit: int) -> Iterator:
        """Refuse a video whose container understated its length, once it passes the limit."""
        for n, item in enumerate(items, start=1):
            if n > limit:
                self._check_duration(n / self.spec.fps)
            yield item

    def _with_pose(self, frames: Iterator[np.ndarray], clock: _Clock) -> Iterator:
        """Full-size frames → (frame_size frame, input-pixel keypoints), with pose timed apart."""
        if self.pose is None:
            raise SltError(
                f"bundle {self.name} is two_stream and holds no pose.onnx: pass "
                "pose=PATH (from `slt export pose`) or keypoints to translate_frames"
            )
        spec, kept = self.spec, deque()

        def remember() -> Iterator[np.ndarray]:
            for frame in frames:
                kept.append(frame)
                yield frame

        source = remember()
        estimates = self.pose.estimate(source)
        while True:
            t = time.perf_counter()
            try:
                points = next(estimates)
            except StopIteration:
                return
            clock.add("pose", time.perf_counter() - t)
            frame = kept.popleft()
            height, width = frame.shape[:2]
            small = network_keypoints(points[None], width, height, spec)[0]
            yield video_io.resize(frame, spec.frame_size), small

    def _recognise(self, items: Iterator, duration: float, clock: _Clock) -> Result:
        spec = self.spec
        inputs = ((network_frames(f[None], spec)[0], kp) for f, kp in items)
        upstream = clock.ms.get("decode", 0.0) + clock.ms.get("pose", 0.0)
        t = time.perf_counter()
        log_probs, features, _ = self.s2g.run(inputs)
        # decoding and pose ran inside the runner's loop (frames are pulled): count them apart
        upstream = clock.ms.get("decode", 0.0) + clock.ms.get("pose", 0.0) - upstream
        clock.add("s2g", time.perf_counter() - t - upstream / 1000.0)
        t = time.perf_counter()
        spans = ctc_decode_spans(log_probs, self.ctc_beam_size, BLANK_ID)
        ids = [s.token for s in spans]
        glosses = self.vocab.decode(ids)
        seconds = FEATURE_STRIDE / spec.fps
        gloss_spans = [
            GlossSpan(
                self.vocab.glosses[s.token],
                round(min(s.start * seconds, duration), 3),
                round(min((s.end + 1) * seconds, duration), 3),
            )
            for s in spans
            if s.token not in (self.vocab.blank_id, self.vocab.pad_id)
        ]
        clock.add("ctc", time.perf_counter() - t)
        text = ""
        if self.stage == "s2t":
            pieces = [
                self._translate_source(features[None, a:b], clock)
                for a, b in self._segments(log_probs)
            ]
            text = " ".join(p for p in pieces if p)
        return Result(" ".join(glosses), text, gloss_spans, duration, clock.done(), self.name)

    def _segments(self, log_probs: np.ndarray) -> list[tuple[int, int]]:
        """Step ranges of at most the encoder's positions, cut at the likeliest pauses."""
        steps, limit = len(log_probs), self.seq2seq.max_source
        if steps <= limit:
            return [(0, steps)]
        count = math.ceil(steps / limit)
        blank = log_probs[:, BLANK_ID]
        cuts, start = [], 0
        for i in range(1, count):
            target = start + (steps - start) // (count - i + 1)
            lo, hi = max(start + 1, target - limit // 4), min(start + limit, target + limit // 4)
            cut = lo + int(np.argmax(blank[lo:hi])) if hi > lo else min(start + limit, target)
            cuts.append(cut)
            start = cut
        bounds = [0, *cuts, steps]
        return [(a, b) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]

    def _translate_source(self, source: np.ndarray, clock: _Clock) -> str:
        mask = np.ones(source.shape[:2], dtype=np.int64)
        t = time.perf_counter()
        encoded = self.seq2seq.encode(source, mask)
        clock.add("encoder", time.perf_counter() - t)
        t = time.perf_counter()
        ids = self.seq2seq.generate(source, mask, self.generation, encoded=encoded)[0]
        clock.add("decoder", time.perf_counter() - t)
        return self.tokenizer.decode(ids)
