"""`Translator`: a bundle's ONNX graphs turned into video → glosses → text, without torch.

    translator = Translator.from_bundle("bundle/")          # verifies hashes, picks CUDA/CPU
    translator = Translator.from_bundle("bundle/", TranslateOptions(device="cpu", beam_size=1))
    result = translator.translate("clip.mp4")               # Result(gloss, text, gloss_spans, …)
    result = translator.translate_frames(rgb, fps=25.0)     # (T, H, W, 3) uint8 RGB
    result = translator.translate_gloss("REGEN MORGEN")     # G2T bundles

Both video inputs go down one line of steps, each timed where it runs
(`Result.timings_ms`; time inside a nested step counts only there):

1. frames at the manifest's fps: a file decoded by PyAV (`video.iter_frames`, at the
   square `frame_size` unless pose needs full frames), or an array resampled in time;
2. keypoints (TwoStream): given with the array, or estimated by pose.onnx;
3. `S2GRunner`: resize to `frame_size`, the training's eval crop, resize and
   normalisation (`clip_input`), s2g.onnx in windows → gloss log-probs, features;
4. CTC decoding (`decoding.ctc_decode_spans`: greedy, or prefix beam search when
   `ctc_beam_size` > 1) with each gloss's time span and confidence (`confidence`);
5. encoder.onnx → beam search over decoder.onnx with its key/value cache
   (`beam_search`) → detokenise. An input whose features are longer than the
   translation model's positions is translated in segments cut where the
   recogniser is most sure of a pause (blank), and the texts joined;
6. the score (mean token log-probability of the chosen beams), the result's confidence
   and `low_confidence` under the manifest's thresholds; a calibrated bundle serves the
   confidences mapped through its dev-fitted curves (`confidence`).

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
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace

import numpy as np

from slt_serve import video as video_io
from slt_serve.bundle import (
    GLOSS_VOCAB,
    POSE,
    S2G,
    TOKENIZER,
    Bundle,
    load_bundle,
)
from slt_serve.confidence import (
    DEFAULT_THRESHOLDS,
    Thresholds,
    apply_curve,
    gloss_confidences,
    sentence_confidence,
)
from slt_serve.decoding import ctc_decode_spans
from slt_serve.errors import SltError
from slt_serve.manifest import Manifest
from slt_serve.onnx_session import providers_for, release_free_memory
from slt_serve.s2g import FEATURE_STRIDE, STEM_GRAPH, S2GRunner
from slt_serve.seq2seq import open_translation
from slt_serve.vocab import GlossVocab

log = logging.getLogger(__name__)

DEFAULT_MAX_SECONDS = 300.0  # longest video translated; longer ones are refused
BLANK_ID = 0
STAGE_TIMINGS = ("decode", "pose", "s2g", "ctc", "encoder", "decoder")  # + "total"


@dataclass(frozen=True)
class TranslateOptions:
    """How `Translator.from_bundle` loads a bundle and translates; `dataclasses.replace` to vary."""

    device: str = "auto"  # "auto" (CUDA when onnxruntime has it), "cuda" or "cpu"
    max_seconds: float = DEFAULT_MAX_SECONDS  # longest video translated; longer ones are refused
    beam_size: int | None = None  # text beam width (None: the manifest's)
    ctc_beam_size: int | None = None  # gloss beam width (None: the manifest's; 1: greedy)
    threads: int = 0  # onnxruntime intra-op threads per graph (0: `intra_op_threads`)
    window_frames: int | None = None  # recogniser window (None: the manifest's); less: less memory
    pose: str | os.PathLike | None = None  # a pose.onnx for a two_stream bundle without one
    verify: bool = True  # check every file's sha256 (sizes are always checked)
    expect_digest: str | None = None  # the pinned bundle digest: any other bundle is refused

    def __post_init__(self) -> None:
        if not self.max_seconds > 0:
            raise SltError(f"max_seconds must be positive, got {self.max_seconds}")
        for label, value in (("beam_size", self.beam_size), ("ctc_beam_size", self.ctc_beam_size)):
            if value is not None and value < 1:
                raise SltError(f"{label} must be at least 1, got {value}")
        if self.threads < 0:
            raise SltError(
                f"threads must be 0 (OMP_NUM_THREADS, else every core) or more, got {self.threads}"
            )


@dataclass(frozen=True)
class GlossSpan:
    """One recognised gloss and the time it was signed, in seconds from the video start."""

    gloss: str
    start_s: float
    end_s: float
    confidence: float = 0.0  # CTC posterior of the gloss averaged over its span (calibrated
    # bundles: the dev accuracy of glosses that sure), in [0, 1]


@dataclass(frozen=True)
class Result:
    """What one translation produced."""

    gloss: str  # space-separated glosses ('' for a G2T bundle input)
    text: str  # the translation ('' for an S2G bundle)
    gloss_spans: list[GlossSpan]  # one per gloss of `gloss`, in order
    duration_s: float  # of the input video (0 for gloss input)
    timings_ms: dict[str, float] = field(default_factory=dict)  # decode, pose, s2g, …, total
    model: str = ""  # the bundle's name from its manifest
    score: float | None = None  # mean token log-prob of the translation (None: no text)
    confidence: float = 0.0  # exp(score) (S2G: the mean gloss confidence); calibrated
    # bundles: the dev accuracy of results that sure
    low_confidence: bool = False  # under the bundle's sentence threshold: likelier wrong
    keypoints: np.ndarray | None = field(default=None, repr=False, compare=False)
    # (T, K, 3) the pose model's keypoints the recogniser read, one per frame at the bundle's
    # fps, in pixels of the decoded frames (TwoStream with a pose model; else None); not in
    # `to_dict`: drawing them (`render`) needs no second pose pass

    def to_dict(self) -> dict:
        """JSON-ready: plain dicts, lists, strings and floats."""
        data = asdict(replace(self, keypoints=None))
        del data["keypoints"]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> Result:
        """A `to_dict()` (a batch row, an API response) back as a `Result`; extra keys ignored."""
        spans = [GlossSpan(**s) for s in data.get("gloss_spans", [])]
        names = {f for f in cls.__dataclass_fields__ if f not in ("gloss_spans", "keypoints")}
        return cls(gloss_spans=spans, **{k: v for k, v in data.items() if k in names})


class _Clock:
    """Milliseconds spent per stage of one call. Time inside a nested stage (decoding pulled
    by pose, frames pulled by s2g) counts for the inner stage only: each interval is
    charged to the stage running then, so nothing is timed by subtraction."""

    def __init__(self) -> None:
        self.start = self._last = time.perf_counter()
        self.ms: dict[str, float] = dict.fromkeys(STAGE_TIMINGS, 0.0)
        self._running: list[str] = []

    def _charge(self) -> None:
        now = time.perf_counter()
        if self._running:
            self.ms[self._running[-1]] += 1000.0 * (now - self._last)
        self._last = now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        self._charge()
        self._running.append(name)
        try:
            yield
        finally:
            self._charge()
            self._running.pop()

    def timed(self, name: str, items: Iterator) -> Iterator:
        """`items`, with the time spent producing each counted to stage `name`."""
        while True:
            with self.stage(name):
                try:
                    item = next(items)
                except StopIteration:
                    return
            yield item

    def done(self) -> dict[str, float]:
        self.ms["total"] = 1000.0 * (time.perf_counter() - self.start)
        return {k: round(v, 2) for k, v in self.ms.items()}


class Translator:
    """A loaded bundle; see the module docstring. Build it with `from_bundle`."""

    kind: str  # single_stream | two_stream | g2t
    stage: str  # s2t | g2t | s2g
    provider: str  # onnxruntime provider of the graphs, e.g. "CPUExecutionProvider"
    manifest: Manifest
    digest: str  # the bundle's digest (`slt_serve.manifest`): what a deployer pins

    def __init__(self, bundle: Bundle, options: TranslateOptions = TranslateOptions()) -> None:
        m = bundle.manifest
        self.bundle, self.manifest, self.options = bundle, m, options
        self.kind, self.stage, self.name, self.digest = m.kind, m.stage, m.name, m.digest
        self.max_seconds = float(options.max_seconds)
        providers, threads = providers_for(options.device), options.threads
        self.spec = m.input  # a serving window other than the export's, where asked for
        if options.window_frames is not None:
            self.spec = m.input.model_copy(update={"window_frames": options.window_frames})
        self.vocab = GlossVocab.load(bundle.file(GLOSS_VOCAB)) if bundle.has(GLOSS_VOCAB) else None
        default_ctc = m.recognition.ctc_beam_size if m.recognition else 1
        self.thresholds = self._thresholds(m)
        self.ctc_beam_size = options.ctc_beam_size or default_ctc
        self.s2g = None
        if bundle.has(S2G):
            stem = bundle.file(STEM_GRAPH) if bundle.has(STEM_GRAPH) else None
            self.s2g = S2GRunner.open(bundle.file(S2G), self.spec, providers, threads, stem)
        self.seq2seq = self.tokenizer = self.generation = None
        if self.stage in ("s2t", "g2t"):
            from slt_serve.tokenizer import TextTokenizer

            self.seq2seq = open_translation(bundle.file, m.translation, providers, threads)
            self.tokenizer = TextTokenizer.load(bundle.file(TOKENIZER))
            self.generation = m.generation.beam_settings(options.beam_size)
        first = self.s2g.session if self.s2g else self.seq2seq.encoder
        self.provider = first.get_providers()[0]
        self.pose = None
        if self.kind == "two_stream":
            path = options.pose or (bundle.file(POSE) if bundle.has(POSE) else None)
            if path is not None:
                self.pose = self._load_pose(path, providers, threads)
            elif self.spec.pose_model == "mediapipe_holistic":
                from slt_serve.pose_mediapipe import serving_pose

                # MediaPipe Holistic behind the no-signer check (422 no_signer)
                self.pose = serving_pose(self.spec.keypoint_layout)
        log.info(
            "bundle %s (%s, %s, %s) on %s", self.name, self.kind, self.stage, self.digest,
            self.provider,
        )  # fmt: skip

    @classmethod
    def from_bundle(
        cls, path: str | os.PathLike, options: TranslateOptions | None = None
    ) -> Translator:
        """Load and verify a bundle folder (`TranslateOptions`: device, beams, limits, pin)."""
        options = options or TranslateOptions()
        providers_for(options.device)  # a bad device is refused before anything is read
        bundle = load_bundle(path, verify=options.verify, expect_digest=options.expect_digest)
        return cls(bundle, options)

    @staticmethod
    def _thresholds(m: Manifest) -> Thresholds:
        if m.confidence is None:
            log.warning(
                "bundle %s holds no confidence calibration: low_confidence uses the default "
                "thresholds (gloss %g, sentence %g); re-export it to calibrate on dev",
                m.name, DEFAULT_THRESHOLDS.gloss, DEFAULT_THRESHOLDS.sentence,
            )  # fmt: skip
            return DEFAULT_THRESHOLDS
        c = m.confidence
        return Thresholds(
            c.gloss_threshold, c.sentence_threshold, True, c.gloss_curve, c.sentence_curve
        )

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
        with clock.stage("decode"):
            info = video_io.probe(video)
        self._check_duration(info.duration_s)
        spec = self.spec
        limit = int(math.ceil(self.max_seconds * spec.fps)) + 1
        # pose reads full frames; so does the reference's centre crop
        full = self.kind == "two_stream" or spec.geometry != "square"
        size = None if full else spec.frame_size
        frames = video_io.iter_frames(video, size=size, fps=spec.fps, max_frames=limit + 1)
        frames = self._limited(clock.timed("decode", frames), limit)
        return self._recognise(frames, None, info.duration_s, clock)

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
        picked = video_io.resample(((i / fps, i) for i in range(len(frames))), fps, self.spec.fps)
        order = [i for i, repeats in picked for _ in range(repeats)]
        points = None
        if keypoints is not None:
            keypoints = np.asarray(keypoints)
            points = (keypoints[i] for i in order)
        return self._recognise((frames[i] for i in order), points, duration, clock)

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
        table = self.manifest.translation.gloss_table  # imported TwoStream-SLT G2T
        source = table.source_ids(glosses) if table else self.tokenizer.source_ids(glosses)
        ids = np.asarray([source], dtype=np.int64)
        text, score = self._translate_source(ids, clock)
        return self._result("", text, [], 0.0, clock, score)

    # --- the steps ---------------------------------------------------------------------------

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

    def _limited(self, frames: Iterator, limit: int) -> Iterator:
        """Refuse a video whose container understated its length, once it passes the limit."""
        for n, frame in enumerate(frames, start=1):
            if n > limit:
                self._check_duration(n / self.spec.fps)
            yield frame

    def _recognise(
        self, frames: Iterator[np.ndarray], keypoints: Iterator | None, duration: float, clock
    ) -> Result:
        """Frames at the bundle's fps [+ their keypoints] → glosses, spans and text."""
        estimated: list[np.ndarray] = []  # the pose model's keypoints, kept for the result
        if keypoints is not None:
            items = zip(frames, keypoints)
        elif self.kind == "two_stream":
            items = self._with_pose(frames, clock, estimated)
        else:
            items = ((frame, None) for frame in frames)
        with clock.stage("s2g"):
            log_probs, features, _ = self.s2g.run(items)
        result = self._after_s2g(log_probs, features, duration, clock, text=True)
        if not estimated:
            return result
        return replace(result, keypoints=np.stack(estimated).astype(np.float32, copy=False))

    def recognise_frames(self, frames: Iterator[np.ndarray], duration: float) -> Result:
        """Frames already at the bundle's fps (full-size RGB) → glosses and text, as
        `translate_frames` after its resampling (`slt_serve.streaming`'s final results)."""
        self._need_video()
        return self._recognise(frames, None, duration, _Clock())

    def from_recognition(
        self, log_probs: np.ndarray, features: np.ndarray, duration: float, *, text: bool = True
    ) -> Result:
        """The steps after s2g on a clip's (T', V) log-probs and (T', D) features, for a caller
        that runs `S2GRunner` itself (`slt_serve.streaming`, in windows); text=False: glosses
        only."""
        self._need_video()
        return self._after_s2g(log_probs, features, duration, _Clock(), text=text)

    def _after_s2g(self, log_probs, features, duration, clock, *, text: bool) -> Result:
        with clock.stage("ctc"):
            gloss_spans = self._gloss_spans(log_probs, duration)
        words, score = "", None
        if text and self.stage == "s2t" and len(log_probs):
            words, score = self._translate_segments(features, log_probs, clock)
        gloss = " ".join(s.gloss for s in gloss_spans)
        return self._result(gloss, words, gloss_spans, duration, clock, score)

    def _result(self, gloss, text, spans, duration, clock, score: float | None) -> Result:
        t = self.thresholds  # `spans` hold raw confidences; the result the calibrated ones
        raw = sentence_confidence(score, [s.confidence for s in spans])
        spans = [replace(s, confidence=apply_curve(t.gloss_curve, s.confidence)) for s in spans]
        if (score is None) != (self.stage == "s2g"):  # an S2T result without text (glosses
            t = DEFAULT_THRESHOLDS  # only): its measure is not the one the bundle calibrated
        confidence, low = apply_curve(t.sentence_curve, raw), raw < t.sentence
        return Result(
            gloss, text, spans, duration, clock.done(), self.name,
            None if score is None else round(score, 4), confidence, low,
        )  # fmt: skip

    def _translate_segments(self, features, log_probs, clock) -> tuple[str, float]:
        """The text of each segment joined; the score: the segments' mean log-probs averaged
        with their lengths in steps as weights."""
        pieces, scores, weights = [], [], []
        for a, b in self._segments(log_probs):
            piece, score = self._translate_source(features[None, a:b], clock)
            pieces.append(piece)
            scores.append(score)
            weights.append(b - a)
        text = " ".join(p for p in pieces if p)
        return text, float(np.average(scores, weights=weights))

    def _with_pose(self, frames: Iterator[np.ndarray], clock: _Clock, estimated: list) -> Iterator:
        """Full-size frames → (frame, its keypoints in frame pixels), pose timed as "pose";
        each frame's keypoints also appended to `estimated`."""
        if self.pose is None:
            raise SltError(
                f"bundle {self.name} is two_stream and holds no pose.onnx: pass "
                "pose=PATH (from `slt export pose`) or keypoints to translate_frames"
            )
        kept: deque[np.ndarray] = deque()

        def remember() -> Iterator[np.ndarray]:
            for frame in frames:
                kept.append(frame)
                yield frame

        for points in clock.timed("pose", self.pose.estimate(remember())):
            estimated.append(np.asarray(points, dtype=np.float32))
            yield kept.popleft(), points

    def _gloss_spans(self, log_probs: np.ndarray, duration: float) -> list[GlossSpan]:
        spans = ctc_decode_spans(log_probs, self.ctc_beam_size, BLANK_ID)
        spans = [s for s in spans if s.token not in (self.vocab.blank_id, self.vocab.pad_id)]
        confidences = gloss_confidences(log_probs, spans)
        seconds = FEATURE_STRIDE / self.spec.fps
        return [
            GlossSpan(
                self.vocab.glosses[s.token],
                round(min(s.start * seconds, duration), 3),
                round(min((s.end + 1) * seconds, duration), 3),
                confidence,
            )
            for s, confidence in zip(spans, confidences, strict=True)
        ]

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

    def _translate_source(self, source: np.ndarray, clock: _Clock) -> tuple[str, float]:
        """One source's text and mean token log-probability."""
        mask = np.ones(source.shape[:2], dtype=np.int64)
        with clock.stage("encoder"):
            encoded = self.seq2seq.encode(source, mask)
        with clock.stage("decoder"):
            ids, score = self.seq2seq.generate_scored(
                source, mask, self.generation, encoded=encoded
            )[0]
            self.seq2seq.release_memory()
        release_free_memory()  # the search's caches, before the next request's recogniser
        return self.tokenizer.decode(ids), score
