"""G2T quality on real data on this CPU: `slt train g2t` on a shipped recipe vs the peer's published row.

    python benchmarks/bench_g2t.py                      # configs/phoenix-2014t/g2t_scratch.yaml
    python benchmarks/bench_g2t.py --override model.dropout=0.2 --override training.max_minutes=8
    python benchmarks/bench_g2t.py --config configs/csl-daily/g2t_scratch.yaml
    python benchmarks/bench_g2t.py --load runs/bench/g2t-phoenix --test PATH/test.jsonl

The benchmark has no training loop of its own: it runs the G2T stage
(`slt_training.stages.g2t.train`, what `slt train g2t CONFIG` runs) on a config
(`--config`, default the PHOENIX-2014T from-scratch recipe; `--override key=value` as
the CLI takes them), then prints one table: dev scores with the dev-chosen length
penalty, the recipe as trained (shape, parameters, epochs and steps, the checkpoints
averaged, the length-penalty sweep), minutes on the budget's clock and in wall time,
and, on PHOENIX-2014T, the data README's peer row with the ratios.

What the recipe does is the config's (read `configs/phoenix-2014t/g2t_scratch.yaml`):
AdamW, a linear decay to zero at a time budget on `training.clock` (`cpu`: this
process's CPU time, i.e. with one thread the core-minutes it got on a shared CPU),
dev greedy BLEU-4 after each epoch, the best `training.average_best` checkpoints'
weights averaged at the end, the length penalty chosen on dev among
`generation.length_penalties` (beam 5). Selection and tuning use dev only.

The test split is not in ../shared/data (it is kept aside and scored independently):
`--test FILE` scores a test.jsonl once, at the end, with the dev-chosen weights and
length penalty; `--run-dir DIR` keeps the run folder (default: a temporary one), and
`--load DIR` scores such a folder without training, so the test can be scored later, once.

The row it is compared with is the data README's peer on this machine: a 6.6
M-parameter BART (3+3 layers, d_model 256, word-level vocabulary) trained from
scratch with transformers' Seq2SeqTrainer, beam 5: dev BLEU-4 24.9, test 23.3,
~23 wall minutes; its beam output is ~12 % short (BP ~0.87). Its other scores were
not published. The load average (sampled every 30 s) says how shared the CPU was.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data" / "phoenix-2014t"
RECIPE = REPO / "configs" / "phoenix-2014t" / "g2t_scratch.yaml"
# the data README's peer on PHOENIX-2014T: name, dev BLEU-4, test BLEU-4, minutes, BP
PEER = ("peer: BART 6.6 M, Seq2SeqTrainer, word-level, beam 5", 24.9, 23.3, 23.0, "~0.87")
log = logging.getLogger("bench_g2t")


@dataclass(frozen=True)
class Result:
    """One trained model's row(s) in the table."""

    label: str
    recipe: str
    dev: dict  # scores as metrics.json has them (bleu1..4, rouge_l, bp)
    test: dict | None
    train_min: float  # training on the budget's clock
    total_min: float  # on the budget's clock, tokenizer and final scoring included
    wall_min: float  # wall time, everything included
    clock: str
    trained_here: bool = True  # False: --load (the load average is not the training's)


class LoadMeter:
    """The 1-minute load average, sampled every 30 s (how shared the CPU was)."""

    def __init__(self) -> None:
        self.samples = [os.getloadavg()[0]]
        self._stop = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        while not self._stop.wait(30):
            self.samples.append(os.getloadavg()[0])

    def stop(self) -> None:
        self._stop.set()
        self.samples.append(os.getloadavg()[0])

    def __str__(self) -> str:
        s = self.samples
        return f"{sum(s) / len(s):.1f} (max {max(s):.1f})"


def device_name(threads: int | None) -> str:
    """The CPU model and the threads torch used."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {threads or 'default'} thread(s)"


def score_test(run_dir: Path, test: Path, lang: str) -> dict:
    """BLEU/ROUGE of a test.jsonl with the run's best weights and generation settings."""
    from slt_training.data.annotations import read_jsonl
    from slt_training.data.text_data import TranslationDataset
    from slt_training.runs import load_translation_run
    from slt_training.stages.translation_task import eval_batches, predict, score

    run = load_translation_run(run_dir)
    data = TranslationDataset(read_jsonl(test), run.tokenizer)
    batches = eval_batches(data, run.tokenizer.pad_id)
    return score(predict(run.model, batches, run.tokenizer, run.generation), lang)


def budget_minutes(run_dir: Path) -> float:
    """Minutes the run spent on its budget's clock (the latest checkpoint's trainer state)."""
    from slt_training.runs import LATEST, checkpoint_pointer

    latest = checkpoint_pointer(run_dir, LATEST)
    state = json.loads((latest / "trainer_state.json").read_text("utf-8")) if latest else {}
    return state.get("budget_s", 0.0) / 60


def recipe_line(cfg, run_dir: Path) -> str:
    """What was trained, from the run folder: shape, size, epochs, averaging, length penalty."""
    from slt_training.runs import load_translation_run
    from slt_training.text.mbart import parameter_count

    run = load_translation_run(run_dir)
    m, metrics, c = cfg.model, run.metrics, run.model.mbart.config
    training, averaged = cfg.training, metrics.get("averaged") or {}
    sweep = metrics.get("length_penalty_sweep") or {}
    epochs = max((h["epoch"] for h in metrics.get("history", [])), default=0)
    parts = [
        f"mBART {parameter_count(run.model.mbart) / 1e6:.1f} M ({c.encoder_layers}+"
        f"{c.decoder_layers} layers, d {c.d_model}, ffn {c.encoder_ffn_dim}, heads "
        f"{c.encoder_attention_heads}, dropout {m.dropout})",
        f"BPE {len(run.tokenizer)} (glosses as {cfg.tokenizer.glosses})",
        f"label smoothing {m.label_smoothing}, {training.optimizer} lr {training.lr}, "
        f"{training.schedule} schedule, "
        + (f"{cfg.data.max_tokens} tokens" if cfg.data.max_tokens else f"{training.batch_size} clips")
        + f"/batch, mixed precision {training.mixed_precision}",
        f"{epochs} epochs / {metrics.get('steps')} steps",
        f"checkpoint {metrics.get('checkpoint')}"
        + (f" (average of {', '.join(averaged['checkpoints'])})" if averaged.get("chosen") else ""),
        f"beam {run.generation.num_beams}, length penalty {run.generation.length_penalty}"
        + (f" (dev BLEU-4 {', '.join(f'{k}: {v:.2f}' for k, v in sweep.items())})" if sweep else ""),
    ]  # fmt: skip
    return ", ".join(parts)


def train_result(args, cfg) -> Result:
    """Train with the G2T stage on `cfg`, then read its run folder."""
    from slt_training.stages import g2t

    wall, cpu = time.time(), time.process_time()
    g2t.train(cfg)
    total = (time.process_time() - cpu) if cfg.training.clock == "cpu" else time.time() - wall
    return Result(
        "slt train g2t",
        recipe_line(cfg, cfg.run_dir),
        json.loads((cfg.run_dir / "metrics.json").read_text("utf-8"))["scores"][cfg.data.dev_split],
        score_test(cfg.run_dir, args.test, cfg.data.lang) if args.test else None,
        budget_minutes(cfg.run_dir),
        total / 60,
        (time.time() - wall) / 60,
        cfg.training.clock,
    )


def load_result(args) -> tuple[Result, object]:
    """Score a run folder that training wrote (no training)."""
    from slt_training.config import G2TConfig, load_config

    cfg = load_config(args.load / "config.yaml", G2TConfig)
    metrics = json.loads((args.load / "metrics.json").read_text("utf-8"))
    history = metrics.get("history") or [{}]
    result = Result(
        f"slt train g2t (loaded from {args.load})",
        recipe_line(cfg, args.load),
        metrics["scores"][cfg.data.dev_split],
        score_test(args.load, args.test, cfg.data.lang) if args.test else None,
        budget_minutes(args.load),
        budget_minutes(args.load),
        history[-1].get("elapsed_s", 0.0) / 60,
        cfg.training.clock,
        trained_here=False,
    )
    return result, cfg


def print_table(cfg, results: list[Result], load: LoadMeter) -> None:
    """One markdown table: ours (dev, test), the peer's published row, and the ratios."""
    keys = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")
    fmt = lambda s: [f"{s[k]:.2f}" for k in keys]  # noqa: E731
    device, blank = device_name(cfg.training.cpu_threads), [""] * 3
    rows = [
        ["model", "split", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "BP",
         "minutes", "device", "load avg"],
        ["---"] * 11,
    ]  # fmt: skip
    for r in results:
        minutes = f"{r.train_min:.1f} train, {r.total_min:.1f} total ({r.clock})"
        if r.clock != "wall":
            minutes += f"; {r.wall_min:.1f} wall"
        shared = str(load) if r.trained_here else "n/a (not trained here)"
        rows.append([r.label, "dev", *fmt(r.dev), f"{r.dev['bp']:.3f}", minutes, device, shared])
        if r.test is not None:
            rows.append([r.label, "test", *fmt(r.test), f"{r.test['bp']:.3f}", "", "", ""])
    is_phoenix = Path(cfg.data.root).resolve() == DATA.resolve()
    if is_phoenix:
        name, dev4, test4, peer_min, peer_bp = PEER
        rows += [
            [name, "dev", *blank, f"{dev4:.1f}", "", peer_bp, f"~{peer_min:.0f}", "this CPU", ""],
            [name, "test", *blank, f"{test4:.1f}", "", "", "", "", ""],
        ]
        for r in results:
            rows.append([f"ratio {r.label} / peer", "dev", *blank, f"{r.dev['bleu4'] / dev4:.2f}",
                         "", "", f"{r.total_min / peer_min:.2f} ({r.clock} / wall)", "", ""])  # fmt: skip
            if r.test is not None:
                rows.append([f"ratio {r.label} / peer", "test", *blank,
                             f"{r.test['bleu4'] / test4:.2f}", "", "", "", "", ""])  # fmt: skip
    print(f"\nG2T on {Path(cfg.data.root).name}: "
          + ("test scored once, at the end" if results[0].test else "test not scored (not here)"))  # fmt: skip
    for r in results:
        print(f"{r.label}: {r.recipe}")
    if not is_phoenix:
        print("(no published peer row for this corpus)")
    print()
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    load = LoadMeter()
    if args.load:
        result, cfg = load_result(args)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            cfg = make_config(args, args.run_dir or Path(tmp) / "g2t")
            result = train_result(args, cfg)
    load.stop()
    print_table(cfg, [result], load)


def make_config(args, run_dir: Path):
    """The recipe (--config) with the command line's overrides and run folder."""
    from slt_training.config import G2TConfig, load_config

    overrides = [f"run_dir={run_dir}"]
    if args.minutes is not None:
        overrides.append(f"training.max_minutes={args.minutes}")
    if args.clock is not None:
        overrides.append(f"training.clock={args.clock}")
    if args.threads is not None:
        overrides.append(f"training.cpu_threads={args.threads}")
    return load_config(args.config, G2TConfig, overrides + args.override)


def parse_args(argv) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=RECIPE, help="a G2T config (the recipe)")
    p.add_argument("--override", action="append", default=[], help="key=value, repeatable")
    p.add_argument("--minutes", type=float, help="training.max_minutes (the time budget)")
    p.add_argument("--clock", choices=("wall", "cpu"), help="training.clock: what minutes count")
    p.add_argument("--threads", type=int, help="training.cpu_threads")
    p.add_argument("--run-dir", type=Path, help="keep the run folder here (default: temporary)")
    p.add_argument("--test", type=Path, help="a test.jsonl scored once at the end")
    p.add_argument("--load", type=Path, help="score a run folder instead of training")
    a = p.parse_args(argv)
    if a.load and (a.override or a.minutes or a.clock or a.threads or a.run_dir):
        raise SystemExit("--load scores a finished run as it is; drop the training options")
    for path in [a.load / "metrics.json"] if a.load else [a.config]:
        if not path.is_file():
            raise SystemExit(f"{path}: not found")
    if a.test and not a.test.is_file():
        raise SystemExit(f"{a.test}: not found (the test split is kept aside)")
    return a


if __name__ == "__main__":
    import sys

    from slt_serve.errors import SltError

    try:
        main()
    except SltError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
