"""Writing a synthetic signed corpus: plan every clip, render the missing ones, annotate.

`generate(root, options)` reads as its steps: check the options, claim the folder
(synth.json holds the settings; a rerun with the same settings resumes, other
settings are refused), plan all clips (sentences, signers, timing: cheap and
deterministic), render the clips whose files are missing (in worker processes),
then write the annotations. Each clip has its own random stream seeded by
(seed, clip index), so the output does not depend on the number of workers.
"""

from __future__ import annotations

import csv
import json
import logging
import multiprocessing
import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write, write_json
from slt_serve.pose import PoseSequence
from slt_serve.video import write_video
from slt_training.data.annotations import SPLITS, Clip, split_path, write_jsonl
from slt_training.data.pose_files import write_npz
from slt_training.data.synth import figure, motion, render, timeline
from slt_training.data.synth.grammar import Grammar, Sentence
from slt_training.data.synth.lexicon import LANGUAGES, MIN_GLOSSES, build_lexicon, max_glosses
from slt_training.data.synth.signer import Signer, make_signers

log = logging.getLogger(__name__)

LAYOUTS = ("splits", "folder")
SPLIT_FRACTIONS = {"train": 0.8, "dev": 0.1, "test": 0.1}
SETTINGS_FILE = "synth.json"
FORMAT_VERSION = 1
CRF = 20  # x264 quality: visually lossless for flat drawn colours at this size


@dataclass(frozen=True)
class SynthOptions:
    """Everything that decides the corpus's content (the number of workers does not)."""

    clips: int = 1500  # clips over all splits
    glosses: int = 48  # lexicon size
    size: int = 128  # frame width and height in pixels
    signers: int = 6  # distinct signers
    seed: int = 0
    fps: float = 25.0
    lang: str = "en"  # text language: en or vi
    layout: str = "splits"  # "splits": our dataset root; "folder": videos + sentences.csv

    def check(self) -> None:
        """Raise SltError naming the first bad setting."""
        rules = [
            (self.clips >= 3, f"--clips {self.clips}: need at least 3 (one per split)"),
            (
                MIN_GLOSSES <= self.glosses <= max_glosses(),
                f"--glosses {self.glosses}: choose {MIN_GLOSSES}..{max_glosses()}",
            ),
            (
                32 <= self.size <= 1024 and self.size % 2 == 0,
                f"--size {self.size}: choose an even number of pixels in 32..1024",
            ),
            (1 <= self.signers <= 64, f"--signers {self.signers}: choose 1..64"),
            (self.seed >= 0, f"--seed {self.seed}: must be 0 or more"),
            (0 < self.fps <= 120, f"--fps {self.fps}: choose a frame rate in (0, 120]"),
            (self.lang in LANGUAGES, f"--lang {self.lang!r}: choose {' or '.join(LANGUAGES)}"),
            (self.layout in LAYOUTS, f"--layout {self.layout!r}: choose {' or '.join(LAYOUTS)}"),
        ]
        for ok, message in rules:
            if not ok:
                raise SltError(message)


PRESETS = {
    "cpu": SynthOptions(),
    "gpu": SynthOptions(clips=5000, glosses=300, size=256),
}


def options_for(preset: str = "cpu", **overrides) -> SynthOptions:
    """A preset's options with the given fields replaced (None means keep the preset's)."""
    if preset not in PRESETS:
        raise SltError(f"--preset {preset!r}: choose {' or '.join(PRESETS)}")
    names = {f.name for f in fields(SynthOptions)}
    unknown = set(overrides) - names
    if unknown:
        raise SltError(f"unknown synth option(s): {', '.join(sorted(unknown))}")
    opts = replace(PRESETS[preset], **{k: v for k, v in overrides.items() if v is not None})
    opts.check()
    return opts


@dataclass(frozen=True)
class ClipPlan:
    """One clip, fully decided: what is signed, by whom, when."""

    index: int  # global clip index: seeds the clip's random streams
    name: str
    split: str
    signer: Signer
    sentence: Sentence
    timeline: timeline.Timeline

    def annotation(self) -> Clip:
        return Clip(
            name=self.name,
            signer=self.signer.id,
            gloss=self.sentence.gloss,
            text=self.sentence.text,
            num_frames=self.timeline.num_frames,
            video=f"videos/{self.name}.mp4",
            gloss_times=self.timeline.gloss_times,
        )


@dataclass(frozen=True)
class SynthResult:
    """What `generate` did."""

    root: Path
    clips: dict[str, int]  # split → clips
    rendered: int  # clips rendered in this run
    skipped: int  # clips found already written (resume)
    frames: int  # frames rendered in this run
    seconds: float  # wall time of the rendering


def split_sizes(clips: int) -> dict[str, int]:
    dev = max(1, round(clips * SPLIT_FRACTIONS["dev"]))
    test = max(1, round(clips * SPLIT_FRACTIONS["test"]))
    return {"train": clips - dev - test, "dev": dev, "test": test}


def _draw_sentences(grammar: Grammar, sizes: dict[str, int], rng) -> dict[str, list[Sentence]]:
    """Train freely from the grammar; dev/test unseen sentences made of train's glosses."""
    train = [grammar.sample(rng) for _ in range(sizes["train"])]
    seen = {s.text for s in train}
    vocab = {g for s in train for g in s.glosses}
    out = {"train": train}
    for split in ("dev", "test"):
        out[split] = []
        for _ in range(sizes[split]):
            for _attempt in range(500):
                s = grammar.sample(rng, allowed=vocab, tries=50)
                if s is not None and s.text not in seen:
                    break
            else:
                raise SltError(
                    f"could not draw a {split} sentence unseen in train from train's "
                    f"{len(vocab)} glosses; use more --clips"
                )
            seen.add(s.text)
            out[split].append(s)
    return out


def plan_corpus(opts: SynthOptions) -> list[ClipPlan]:
    """Every clip of the corpus, in split order (cheap: nothing is drawn)."""
    lexicon = build_lexicon(opts.glosses, opts.lang)
    signers = make_signers(opts.signers, opts.seed)
    sentences = _draw_sentences(
        Grammar(lexicon), split_sizes(opts.clips), np.random.default_rng([opts.seed, 0])
    )
    plans: list[ClipPlan] = []
    for split in SPLITS:
        for k, sentence in enumerate(sentences[split]):
            index = len(plans)
            rng = np.random.default_rng([opts.seed, 2, index])
            signer = signers[int(rng.integers(len(signers)))]
            forms = [lexicon.sign(g) for g in sentence.glosses]
            tl = timeline.plan(list(sentence.glosses), forms, signer.speed, opts.fps, rng)
            name = f"clip{index:05d}" if opts.layout == "folder" else f"{split}{k:05d}"
            plans.append(ClipPlan(index, name, split, signer, sentence, tl))
    return plans


def clip_paths(root: Path, name: str) -> tuple[Path, Path]:
    return root / "videos" / f"{name}.mp4", root / "keypoints" / f"{name}.npz"


def _is_done(root: Path, plan: ClipPlan, opts: SynthOptions) -> bool:
    video, keypoints = clip_paths(root, plan.name)
    return video.is_file() and (opts.layout == "folder" or keypoints.is_file())


def render_keypoints(plan: ClipPlan, opts: SynthOptions) -> tuple[np.ndarray, figure.Placement]:
    """The clip's ground-truth keypoints (T, 133, 3) and where the signer stands."""
    rng = np.random.default_rng([opts.seed, 3, plan.index])
    poses = timeline.poses(plan.timeline)
    wobble = timeline.sway(len(poses), opts.fps, rng)
    poses[:, motion.RIGHT_WRIST] += wobble[:, :2]
    poses[:, motion.LEFT_WRIST] += wobble[:, 2:]
    jitter = (rng.uniform(-0.015, 0.015), rng.uniform(-0.01, 0.01), rng.uniform(-0.03, 0.03))
    place = figure.Placement.for_signer(plan.signer, opts.size, opts.size, jitter)
    return figure.keypoints(poses, plan.signer, place), place


def render_frames(
    plan: ClipPlan, opts: SynthOptions, kp: np.ndarray, place
) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 drawn from the keypoints, with pixel noise."""
    rng = np.random.default_rng([opts.seed, 4, plan.index])
    bg = render.background(plan.signer, place)
    for frame_kp in kp:
        yield render.add_noise(
            render.draw(frame_kp, plan.signer, place, bg), plan.signer.noise, rng
        )


def write_mp4(path: Path, frames: Iterable[np.ndarray], fps: float) -> int:
    """Encode RGB frames as H.264 MP4, atomically, byte-for-byte the same for the same frames."""
    return write_video(path, frames, fps, crf=CRF, preset="veryfast", reproducible=True)


def render_clip(job: tuple[Path, ClipPlan, SynthOptions]) -> int:
    """Render one clip's video (and keypoints, in the splits layout); returns its frames."""
    root, plan, opts = job
    video, kp_path = clip_paths(root, plan.name)
    kp, place = render_keypoints(plan, opts)
    if opts.layout == "splits":
        write_npz(kp_path, PoseSequence(kp, opts.fps, opts.size, opts.size))
    return write_mp4(video, render_frames(plan, opts, kp, place), opts.fps)


def _worker_init() -> None:
    import cv2

    cv2.setNumThreads(1)


def _render_all(jobs: list, workers: int, progress: bool) -> int:
    bar = tqdm(
        total=len(jobs), unit="clip", desc="synth", disable=None if progress else True
    )  # None: off when not a terminal
    frames = 0
    try:
        if workers <= 1 or len(jobs) <= 1:
            for job in jobs:
                frames += render_clip(job)
                bar.update()
            return frames
        ctx = multiprocessing.get_context(
            "spawn"
        )  # no fork of a process that may hold torch threads
        with ctx.Pool(workers, initializer=_worker_init) as pool:
            for n in pool.imap_unordered(render_clip, jobs, chunksize=4):
                frames += n
                bar.update()
        return frames
    finally:
        bar.close()


def describe(opts: SynthOptions) -> dict:
    """The content of synth.json: settings (compared on resume), lexicon, signers, splits."""
    lexicon = build_lexicon(opts.glosses, opts.lang)
    return {
        "generator": "slt data synth",
        "format": FORMAT_VERSION,
        "settings": asdict(opts),
        "splits": split_sizes(opts.clips),
        "signers": [asdict(s) for s in make_signers(opts.signers, opts.seed)],
        "lexicon": lexicon.describe(),
    }


def claim(root: Path, opts: SynthOptions) -> None:
    """Write synth.json into a new/empty folder, or accept a folder made with the same settings."""
    settings_path = root / SETTINGS_FILE
    if settings_path.is_file():
        try:
            old = json.loads(settings_path.read_text(encoding="utf-8")).get("settings", {})
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            raise SltError(
                f"{settings_path}: unreadable; remove the folder or choose another"
            ) from None
        new = asdict(opts)
        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        if diff:
            changes = ", ".join(f"{k}: {old.get(k)!r} → {new.get(k)!r}" for k in diff)
            raise SltError(
                f"{root} holds a corpus made with other settings ({changes}); "
                "rerun with the same settings to resume, or choose an empty folder"
            )
        return
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SltError(
            f"{root} is not empty and holds no {SETTINGS_FILE}; choose an empty or new folder"
        )
    write_json(settings_path, describe(opts))


def _remove_partial_files(root: Path) -> None:
    """Temporary files of an interrupted run (atomic writes that never got renamed)."""
    for folder in ("videos", "keypoints"):
        for tmp in (root / folder).glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def write_annotations(root: Path, plans: list[ClipPlan], layout: str) -> None:
    if layout == "splits":
        for split in SPLITS:
            write_jsonl(
                split_path(root, split), [p.annotation() for p in plans if p.split == split]
            )
        return
    with atomic_write(root / "sentences.csv") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["name", "text", "signer"])
        for p in plans:
            w.writerow([p.name, p.sentence.text, p.signer.id])
    write_jsonl(root / "ground_truth.jsonl", [p.annotation() for p in plans])


def generate(
    root: str | os.PathLike, opts: SynthOptions, workers: int = 1, progress: bool = False
) -> SynthResult:
    """Generate (or finish) a synthetic corpus under `root`; see the module docstring."""
    opts.check()
    if workers < 1:
        raise SltError(f"--workers {workers}: need at least 1")
    root = Path(root)
    claim(root, opts)
    _remove_partial_files(root)
    plans = plan_corpus(opts)
    todo = [p for p in plans if not _is_done(root, p, opts)]
    log.info("%d clips planned, %d to render with %d worker(s)", len(plans), len(todo), workers)
    start = time.perf_counter()
    frames = _render_all([(root, p, opts) for p in todo], workers, progress)
    seconds = time.perf_counter() - start
    write_annotations(root, plans, opts.layout)
    counts = {s: sum(p.split == s for p in plans) for s in SPLITS}
    return SynthResult(root, counts, len(todo), len(plans) - len(todo), frames, seconds)
