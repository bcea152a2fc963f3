"""S2G on the CPU-size synthetic corpus: the shipped recipe against the one it replaced.

    python benchmarks/bench_s2g.py [--minutes 30] [--baseline-minutes 10] [--threads 1]
                                   [--data DS] [--sequential]

Trains `configs/synth/s2g_single.yaml` (SingleStream, S3D at width 0.25, every 2nd
frame, 64², motion channels, mild augmentation) for `--minutes` and, at the same time
in a second process, the recipe it replaced (`OLD_RECIPE`: the full-width S3D on every
frame, the reference's augmentation) for `--baseline-minutes`, so that both see the
same CPU while they overlap. Dev is scored (greedy) every `--dev-every` optimizer
steps; the best checkpoint is scored with beam 5 on dev and test at the end (not
counted in the budget).

Prints each recipe's dev WER curve with clips/s, then one summary line per recipe
(GFLOPs per clip, clips/s, minutes to reach dev WER ≤ 50 and ≤ 20, final WER) and
the ratios new / old. The CPU is shared: the script reports the load average and
how much CPU other processes used during the run. Goal (issue 3): dev WER ≤ 20
within 30 minutes on this 2-core CPU.

The corpus is `--data` (default data/synth of the repository, or /tmp/qs/data/synth);
without one, the script generates it (1 500 clips, 48 glosses, 128²) and caches 64²
frames first (several minutes).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import resource
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synth" / "s2g_single.yaml"
DATA_CANDIDATES = (REPO / "data" / "synth", Path("/tmp/qs/data/synth"))
# The recipe configs/synth/s2g_single.yaml shipped before (dev WER 71.5 after 25 min).
OLD_RECIPE = (
    "model.width=1",
    "data.frame_stride=1",
    "training.epochs=8",
    "training.lr=1e-3",
    "training.warmup_steps=50",
    "augmentation.crop_min_area=0.7",
    "augmentation.speed=[0.5, 1.5]",
)
NEW, OLD = "new: width 0.25, stride 2", "old: width 1, every frame"
THRESHOLDS = (50.0, 20.0)


def prepare_corpus(root: Path) -> Path:
    """A ready synthetic corpus at `root` (generated, vocabulary, 64² frames) if missing."""
    from slt_training.data.annotations import load_split
    from slt_training.data.frames import cache_frames
    from slt_training.data.synth.corpus import generate, options_for
    from slt_training.data.vocab import build_vocab

    if not (root / "frames" / "64" / "cache.json").is_file():
        generate(root, options_for("cpu"), workers=2)
        build_vocab(load_split(root, "train")).save(root / "gloss_vocab.json")
        cache_frames(root, size=64, workers=2, progress=False)
    return root


def overrides(data: Path, out: Path, minutes: float, dev_every: int, threads: int, extra=()):
    return [
        f"data.root={data}",
        f"run_dir={out}",
        f"training.max_minutes={minutes}",
        f"training.dev_every_steps={dev_every}",
        "training.checkpoint_every_minutes=0",
        f"training.cpu_threads={threads}",
        *extra,
    ]


def gflops_per_clip(cfg, frames: int) -> float:
    """Forward GFLOPs of the config's model on one clip of `frames` cached frames (eval view)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from slt_training.data.s2g_data import load_vocab
    from slt_training.stages.s2g import build_model

    model, options = build_model(cfg, len(load_vocab(cfg.data.root)), pretrained=False)
    steps = -(-frames // options.frame_stride)
    side, channels = options.input_size, 6 if options.motion_channels else 3
    video = torch.zeros(1, channels, steps, side, side)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(video, torch.tensor([steps]))
    return counter.get_total_flops() / 1e9


def train_one(label: str, args: list[str]) -> dict:
    """One training run (in its own process): history, final scores, batch, GFLOPs/clip."""
    logging.basicConfig(level=logging.WARNING)
    from slt_training.config import S2GConfig, load_config
    from slt_training.data.annotations import load_split
    from slt_training.runs import S2GRun
    from slt_training.stages.s2g import train

    cfg = load_config(CONFIG, S2GConfig, args)
    dev = load_split(cfg.data.root, cfg.data.dev_split)
    mean_frames = round(sum(c.num_frames or 0 for c in dev) / len(dev))
    flops = gflops_per_clip(cfg, mean_frames)
    started = time.monotonic()
    result = train(cfg)
    metrics = S2GRun.of(cfg).metrics()
    return {
        "label": label,
        "history": metrics["history"],
        "scores": result.scores,
        "batch": cfg.training.batch_size,
        "gflops": flops,
        "wall_min": (time.monotonic() - started) / 60,
    }


def busy_cpu_seconds() -> float | None:
    """CPU seconds all processes of the machine have used since boot (Linux), else None."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU seconds of this process and its finished children (training runs, loaders)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def first_reaching(history: list[dict], wer: float) -> str:
    for h in history:
        if h["wer"] <= wer:
            return f"{h['elapsed_s'] / 60:.1f}"
    return "not reached"


def clips_per_s(run: dict) -> float:
    last = run["history"][-1]
    return last["step"] * run["batch"] / max(last["elapsed_s"], 1e-9)


def curve_table(runs: list[dict]) -> str:
    lines = [
        "| recipe | min (incl. dev) | steps | clips/s | dev WER (greedy) | empty % |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        for h in run["history"]:
            clips = h["step"] * run["batch"]
            lines.append(
                f"| {run['label']} | {h['elapsed_s'] / 60:.1f} | {h['step']} | "
                f"{clips / max(h['elapsed_s'], 1e-9):.2f} | {h['wer']:.1f} | {h['empty_pct']:.0f} |"
            )
    return "\n".join(lines)


def summary_table(runs: list[dict]) -> str:
    head = " | ".join(f"min to WER ≤ {t:.0f}" for t in THRESHOLDS)
    lines = [
        f"| recipe | GFLOPs/clip (fwd) | clips/s | {head} | best dev WER (beam 5) | test WER |",
        "|---|---|---|" + "---|" * len(THRESHOLDS) + "---|---|",
    ]
    for run in runs:
        reach = " | ".join(first_reaching(run["history"], t) for t in THRESHOLDS)
        test = run["scores"].get("test", {}).get("wer")
        lines.append(
            f"| {run['label']} | {run['gflops']:.2f} | {clips_per_s(run):.2f} | {reach} | "
            f"{run['scores']['dev']['wer']:.1f} | {'-' if test is None else f'{test:.1f}'} |"
        )
    if len(runs) == 2:
        new, old = runs
        lines.append(
            f"| ratio new / old | {new['gflops'] / old['gflops']:.2f}× | "
            f"{clips_per_s(new) / clips_per_s(old):.2f}× |"
            + " |" * len(THRESHOLDS)
            + f" {new['scores']['dev']['wer'] / max(old['scores']['dev']['wer'], 1e-9):.2f}× | |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="budget of the new recipe")
    parser.add_argument(
        "--baseline-minutes", type=float, default=10.0, help="budget of the old one; 0: skip it"
    )
    parser.add_argument("--data", type=Path, default=None, help="prepared synthetic corpus")
    parser.add_argument("--dev-every", type=int, default=150, help="dev WER every N steps")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads per run")
    parser.add_argument(
        "--sequential", action="store_true", help="run the recipes one after the other"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_s2g_") as tmp:
        data = args.data or next((d for d in DATA_CANDIDATES if d.is_dir()), Path(tmp) / "synth")
        prepare_corpus(data)
        jobs = [
            (NEW, overrides(data, Path(tmp) / "new", args.minutes, args.dev_every, args.threads))
        ]
        if args.baseline_minutes > 0:
            old_args = overrides(
                data, Path(tmp) / "old", args.baseline_minutes, args.dev_every, args.threads
            )
            jobs.append((OLD, old_args + list(OLD_RECIPE)))
        load_before, busy_before, own_before = (
            os.getloadavg(),
            busy_cpu_seconds(),
            own_cpu_seconds(),
        )
        started = time.monotonic()
        workers = 1 if args.sequential else len(jobs)
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [pool.submit(train_one, label, job_args) for label, job_args in jobs]
            runs = [f.result() for f in futures]
        wall = time.monotonic() - started
        load_after, busy_after = os.getloadavg(), busy_cpu_seconds()
        own = own_cpu_seconds() - own_before
    print(f"\nS2G SingleStream, {CONFIG.relative_to(REPO)}, corpus {data}")
    mode = "one after the other" if args.sequential else "at the same time"
    print(
        f"{len(runs)} run(s) {mode}, {args.threads} torch thread(s) each, {wall / 60:.1f} min wall"
    )
    cores = os.cpu_count() or 1
    contention = f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
    if busy_before is not None and busy_after is not None:
        others = max(0.0, (busy_after - busy_before) - own) / wall
        contention += f"; other processes used {others:.2f} of the {cores} cores on average"
    print(f"CPU: {cores} cores, shared: {contention}\n")
    print(curve_table(runs))
    print()
    print(summary_table(runs))


if __name__ == "__main__":
    main()
