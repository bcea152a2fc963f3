"""S2G on the CPU-size synthetic corpus: dev WER over wall time, and training clips/s.

    python benchmarks/bench_s2g.py [--minutes 30] [--data DS] [--compare]

Trains `configs/synth/s2g_single.yaml` (SingleStream, 64², motion channels) for a
time budget, scoring dev every `--dev-every` optimizer steps, and prints the dev
WER curve (greedy) and the final beam-5 WER of the best checkpoint. Goal: dev
WER ≤ 20 within 30 minutes on a 2-core CPU. `--compare` then trains the same
config without motion channels (raw RGB) for the same budget, in the same run.

The corpus is `--data` (default /tmp/qs/data/synth if present); without one, the
script generates it with `slt data synth` settings (1 500 clips, 48 glosses, 128²)
and caches 64² frames first (several minutes).
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "synth" / "s2g_single.yaml"
DEFAULT_DATA = Path("/tmp/qs/data/synth")


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


def run(data, minutes, dev_every, epochs, motion, out, threads):
    """Train for `minutes`; returns (history, final scores, batch size)."""
    from slt_training.config import S2GConfig, load_config
    from slt_training.stages.s2g import train

    overrides = [
        f"data.root={data}",
        f"run_dir={out}",
        f"data.motion_channels={str(motion).lower()}",
        f"training.max_minutes={minutes}",
        f"training.dev_every_steps={dev_every}",
        f"training.epochs={epochs}",
        "training.checkpoint_every_minutes=0",
        f"training.cpu_threads={threads}",
    ]
    cfg = load_config(CONFIG, S2GConfig, overrides)
    result = train(cfg)
    import json

    metrics = json.loads((out / "metrics.json").read_text())
    return metrics["history"], result.scores, cfg.training.batch_size


def table(rows: list[tuple[str, list[dict], dict, int]]) -> str:
    lines = [
        "| input | train min (incl. dev) | optimizer steps | clips seen | clips/s | dev WER (greedy) | empty % |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, history, _, batch in rows:
        for h in history:
            clips = h["step"] * batch
            lines.append(
                f"| {label} | {h['elapsed_s'] / 60:.1f} | {h['step']} | {clips} | "
                f"{clips / max(h['elapsed_s'], 1e-9):.2f} | {h['wer']:.1f} | {h['empty_pct']:.0f} |"
            )
    lines.append("")
    lines.append("| input | best checkpoint: dev WER (beam 5) | test WER (beam 5) |")
    lines.append("|---|---|---|")
    for label, _, scores, _ in rows:
        test = scores.get("test", {}).get("wer")
        lines.append(
            f"| {label} | {scores['dev']['wer']:.1f} | {'-' if test is None else f'{test:.1f}'} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="training budget per run")
    parser.add_argument("--data", type=Path, default=None, help="prepared synthetic corpus")
    parser.add_argument("--dev-every", type=int, default=100, help="dev WER every N steps")
    parser.add_argument("--epochs", type=int, default=4, help="cosine schedule length")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--compare", action="store_true", help="also train on raw RGB")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench_s2g_") as tmp:
        data = args.data or (DEFAULT_DATA if DEFAULT_DATA.is_dir() else Path(tmp) / "synth")
        prepare_corpus(data)
        rows = []
        variants = [("RGB + motion", True)] + ([("RGB only", False)] if args.compare else [])
        for label, motion in variants:
            started = time.monotonic()
            out = Path(tmp) / label.replace(" ", "_").replace("+", "p")
            history, scores, batch = run(
                data, args.minutes, args.dev_every, args.epochs, motion, out, args.threads
            )
            rows.append((label, history, scores, batch))
            print(f"{label}: {(time.monotonic() - started) / 60:.1f} min with final evaluation")
    print(f"\nS2G SingleStream, {CONFIG.relative_to(REPO)}, corpus {data}\n")
    print(table(rows))


if __name__ == "__main__":
    main()
