"""S2G networks on CPU: SingleStream vs TwoStream (and TwoStream without its parts).

    python benchmarks/bench_recognition.py [--frames 32] [--size 112] [--repeats 3]

One clip of `--frames` frames at `--size`² (TwoStream heatmaps at half that, as the
reference's 224²/112²), the PHOENIX-2014T gloss vocabulary (built from
../shared/data/phoenix-2014t/train.jsonl, CC BY-NC-SA 3.0) and a real gloss
sequence from it as the CTC target; the 79 keypoints are real MediaPipe Holistic
poses (../shared/data/poses/mediapipe_holistic586_47f.pose, pose-format, MIT): upper
body, both hands and 20 face points. Frames are random (speed does not depend on
them). Heads are the reference's size (512 hidden, 2048 inner).

Each row runs in a fresh process: "train s" is one forward + backward with the
loss (train mode, best of `--repeats` after one warm-up), "eval s" one forward
without targets (eval mode, no grad), "peak MB" the growth of the process's peak
RSS over its RSS once the model and inputs exist (Linux `ru_maxrss`), i.e. the
activations, gradients and workspace of one training step. Ratios are to
SingleStream in the same run.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import time
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table
from shared_data import DATA

POSE_FILE = DATA / "poses" / "mediapipe_holistic586_47f.pose"
VARIANTS = (
    "SingleStream",
    "TwoStream (PHOENIX defaults)",
    "TwoStream, no pyramid/distillation",
    "TwoStream, no laterals",
)


def phoenix_vocab_and_target(max_glosses: int) -> tuple[int, list[int]]:
    """Size of the PHOENIX-2014T train gloss vocabulary and the ids of a real sentence."""
    from slt_serve.vocab import GlossVocab

    rows = [json.loads(line) for line in (DATA / "phoenix-2014t" / "train.jsonl").open()]
    vocab = GlossVocab.from_glosses(g for row in rows for g in row["gloss"].split())
    sentence = next(r["gloss"].split() for r in rows if len(r["gloss"].split()) <= max_glosses)
    return len(vocab.glosses), [vocab.glosses.index(g) for g in sentence]


def holistic_keypoints(frames: int, frame_size: int) -> np.ndarray:
    """(frames, 79, 3) keypoints in pixels of a `frame_size`² frame, from the real pose file
    (MediaPipe Holistic mapped onto COCO-WholeBody by point name, TwoStream-SLT's subset)."""
    from slt_serve.layouts import select
    from slt_training.data.pose_files import read_pose

    seq, _ = read_pose(POSE_FILE)
    kp = select(seq.keypoints[:frames], "twostream_79").copy()
    kp[..., :2] *= np.array([frame_size / seq.width, frame_size / seq.height], np.float32)
    return kp


def build(variant: str, vocab_size: int, size: int):
    """The model of one row and a function running it on (inputs, targets)."""
    from slt_training.models.heatmaps import HeatmapOptions
    from slt_training.models.recognition import (
        SingleStreamOptions,
        SingleStreamRecognizer,
        TwoStreamOptions,
        TwoStreamRecognizer,
    )

    if variant == "SingleStream":
        return SingleStreamRecognizer(SingleStreamOptions(), vocab_size)
    opts = TwoStreamOptions(heatmaps=HeatmapOptions(size=(size // 2, size // 2)))
    if "no pyramid" in variant:
        opts = replace(opts, pyramid=replace(opts.pyramid, enabled=False), distillation=False)
    if "no laterals" in variant:
        opts = replace(opts, lateral=replace(opts.lateral, blocks=()))
    return TwoStreamRecognizer(opts, vocab_size)


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(variant: str, frames: int, size: int, repeats: int) -> dict:
    """Runs in a fresh process: parameters, train and eval seconds, peak RSS growth."""
    import torch

    torch.manual_seed(0)
    vocab_size, target = phoenix_vocab_and_target(max(1, frames // 4))
    model = build(variant, vocab_size, size)
    video = torch.randn(1, 3, frames, size, size)
    inputs = (
        [video]
        if variant == "SingleStream"
        else [video, torch.from_numpy(holistic_keypoints(frames, size))[None]]
    )
    inputs.append(torch.tensor([frames]))
    targets = (torch.tensor([target]), torch.tensor([len(target)]))
    base = _rss_mb()
    train = []
    for _ in range(repeats + 1):
        model.zero_grad(set_to_none=True)
        start = time.perf_counter()
        model(*inputs, *targets).loss.backward()
        train.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - base
    model.eval()
    evals = []
    with torch.no_grad():
        for _ in range(repeats + 1):
            start = time.perf_counter()
            model(*inputs)
            evals.append(time.perf_counter() - start)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {
        "params": params,
        "trainable": trainable,
        "train": min(train[1:]),
        "eval": min(evals[1:]),
        "peak": peak,
        "vocab": vocab_size,
    }


def _in_fresh_process(*args) -> dict:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=32)
    parser.add_argument("--size", type=int, default=112)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = {v: _in_fresh_process(v, args.frames, args.size, args.repeats) for v in VARIANTS}
    base = rows["SingleStream"]
    table = Table(
        title=f"S2G on CPU, 1 clip of {args.frames} frames at {args.size}² "
        f"(heatmaps {args.size // 2}², 79 real keypoints), vocabulary {base['vocab']} "
        f"(PHOENIX-2014T), {os.cpu_count()} CPUs, best of {args.repeats}"
    )
    for col in (
        "network",
        "params M",
        "trainable M",
        "train s",
        "× single",
        "eval s",
        "× single",
        "peak MB",
        "× single",
    ):
        table.add_column(col, justify="left" if col == "network" else "right")
    for name, r in rows.items():
        table.add_row(
            name,
            f"{r['params'] / 1e6:.1f}",
            f"{r['trainable'] / 1e6:.1f}",
            f"{r['train']:.2f}",
            f"{r['train'] / base['train']:.1f}",
            f"{r['eval']:.2f}",
            f"{r['eval'] / base['eval']:.1f}",
            f"{r['peak']:.0f}",
            f"{r['peak'] / base['peak']:.1f}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
