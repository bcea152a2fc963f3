"""G2T quality on real data on this CPU: a small mBART from scratch vs the peer's published row.

    python benchmarks/bench_g2t.py --minutes 26 --threads 1 --save runs/bench/g2t-phoenix
    python benchmarks/bench_g2t.py --dataset ../shared/data/csl-daily --lang zh --threads 1
    python benchmarks/bench_g2t.py --load runs/bench/g2t-phoenix --test PATH/test.jsonl
    python benchmarks/bench_g2t.py --minutes 10 --driver both   # the plain loop vs `slt train g2t`

Data: ../shared/data/phoenix-2014t (RWTH-PHOENIX-Weather-2014T as distributed by
TwoStream-SLT, CC BY-NC-SA 3.0): train 7 096, dev 519; ../shared/data/csl-daily
(research use): train 18 401, dev 1 077. A BPE tokenizer is trained on the train
text and the lowercased glosses (`--glosses text`: glosses share the text's
sub-words; at 6 000 pieces nearly every German word is one piece, i.e. word level),
a small mBART (shape from the options) is trained from scratch for `--minutes` of
wall time with a plain loop (AdamW, linear warm-up then linear decay to zero at
the time budget, batches by tokens, label smoothing). After each epoch dev is
translated greedily and the epoch's weights are kept when its dev BLEU-4 is among
the best `--average`; at the end the kept weights are averaged, and beam search
(5 beams) is scored on dev for each length penalty of `--length-penalties`: the
best is kept. Selection and tuning use dev only.

`--driver stage` trains with the G2T stage instead (`slt_training.stages.g2t`: the
shared Accelerate trainer, Adam with cosine decay over `--epochs`, no averaging), with
the same data, tokenizer, learning rate, warm-up and token batches (the stage's
`small` shape: the shape options are the loop's), then sweeps the same length
penalties on its best checkpoint. `--driver both` runs the loop first and gives the
stage as many epochs as the loop reached in its budget.

The test split is not in ../shared/data (it is kept aside and scored
independently): `--test FILE` scores a test.jsonl once, at the end, with the
dev-chosen weights and length penalty; `--save DIR` writes the averaged model as a
G2T run folder (model.json, tokenizer.json, checkpoints/, metrics.json,
predictions/dev.jsonl: `load_translation_run` reads it), and `--load DIR` scores
such a folder without training, so the test can be scored later, once.

The row it is compared with is the data README's peer on this machine: a 6.6
M-parameter BART (3+3 layers, d_model 256, word-level vocabulary) trained from
scratch with transformers' Seq2SeqTrainer, beam 5: dev BLEU-4 24.9, test 23.3,
~23 min; its beam output is ~12 % short (BP ~0.87). Its other scores were not
published. Minutes are wall time on a 2-core CPU shared with other jobs (the load
average is printed); the training budget is fixed, so sharing costs epochs. With
`--clock cpu` the budget counts this process's CPU time instead: with `--threads 1`
that is the core-minutes the run got, whatever the neighbours took (wall time is
printed beside it).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import os
import platform
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from slt_training.data.annotations import read_jsonl
from slt_training.data.text_data import TextBatch, TranslationDataset, collate, token_batches
from slt_training.metrics import TextScores, evaluate_text
from slt_training.models.translation import GenerateOptions, TranslationModel, TranslationOptions
from slt_training.runs import (
    BEST,
    CHECKPOINTS,
    ModelSpec,
    TranslationRun,
    load_translation_run,
    write_checkpoint,
)
from slt_training.text.mbart import build_mbart, parameter_count, preset
from slt_training.text.tokenizer import TokenizerOptions, train_tokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "phoenix-2014t"
# the data README's peer on PHOENIX-2014T: name, dev BLEU-4, test BLEU-4, minutes, BP
PEER = ("peer: BART 6.6 M, Seq2SeqTrainer, word-level, beam 5", 24.9, 23.3, 23.0, "~0.87")
LANG_TOKENS = {"de": "de_DE", "zh": "zh_CN", "vi": "vi_VN", "en": "en_XX"}
AVERAGED = "averaged"  # the checkpoint folder --save writes
log = logging.getLogger("bench_g2t")


@dataclass(frozen=True)
class Run:
    """One training run's settings (the command-line options)."""

    dataset: Path
    lang: str
    threads: int
    minutes: float
    clock: str  # what --minutes counts: "wall" time or this process's "cpu" time
    glosses: str
    vocab_size: int
    encoder_layers: int
    decoder_layers: int
    d_model: int
    ffn: int
    heads: int
    dropout: float
    attention_dropout: float
    label_smoothing: float
    lr: float
    warmup: int
    max_tokens: int
    bf16: bool  # train under bfloat16 autocast (weights and optimizer stay float32)
    average: int
    length_penalties: tuple[float, ...]
    seed: int
    test: Path | None
    save: Path | None
    load: Path | None
    driver: str = "loop"  # loop, stage or both
    epochs: int = 20  # --driver stage: epochs of the stage's schedule


@dataclass(frozen=True)
class Result:
    """One trained model's row(s) in the table."""

    label: str
    recipe: str
    dev: TextScores
    test: TextScores | None
    train_min: float  # on `clock`
    total_min: float  # on `clock`, scoring included
    wall_min: float  # wall time, scoring included
    clock: str = "wall"


class LoadMeter:
    """The 1-minute load average, sampled at each epoch (how shared the CPU was)."""

    def __init__(self):
        self.samples = [os.getloadavg()[0]]

    def sample(self) -> None:
        self.samples.append(os.getloadavg()[0])

    def __str__(self) -> str:
        s = self.samples
        return f"{sum(s) / len(s):.1f} (max {max(s):.1f})"


def device_name(threads: int) -> str:
    """The CPU model and the threads torch used."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores, {threads} thread(s)"


def now(clock: str) -> float:
    """Seconds on the budget's clock: wall time, or CPU time of this process (with one
    thread, the core-seconds it got: what a shared CPU leaves of a wall-time budget)."""
    return time.process_time() if clock == "cpu" else time.time()


def lr_factor(step: int, elapsed: float, run: Run) -> float:
    """Linear warm-up over `warmup` steps, then linear decay to zero at the time budget."""
    warm = min(1.0, (step + 1) / run.warmup)
    return warm * max(0.0, 1.0 - elapsed / (run.minutes * 60))


def translate_all(model, dataset, tokenizer, options: GenerateOptions) -> list[str]:
    """Hypotheses for every example, in dataset order."""
    model.eval()
    hyps: dict[int, str] = {}
    for idx in token_batches(dataset.examples, max_tokens=4000):
        batch = collate([dataset[i] for i in idx], tokenizer.pad_id)
        for i, h in zip(idx, model.translate(tokenizer, options=options, **batch.model_inputs())):
            hyps[i] = h
    return [hyps[i] for i in range(len(dataset))]


def score(run: Run, model, data, tokenizer, options: GenerateOptions):
    """(scores, hypotheses) of one split."""
    hyps = translate_all(model, data, tokenizer, options)
    return evaluate_text(hyps, [e.text for e in data.examples], run.lang), hyps


def train_step(model, batch: TextBatch, optimizer, bf16: bool) -> float:
    model.train()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out = model(labels=batch.labels, **batch.model_inputs())
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(out.loss.detach())


def train(run: Run, model, train_set, dev, tokenizer, load: LoadMeter) -> tuple[list, int, int]:
    """Train for the time budget; the best `average` epochs' weights by greedy dev BLEU-4."""
    t0, step, epoch = now(run.clock), 0, 0
    left = lambda: now(run.clock) - t0 < run.minutes * 60  # noqa: E731
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, now(run.clock) - t0, run))
    kept: list[tuple[float, int, dict]] = []
    while left():
        epoch += 1
        losses = []
        for idx in token_batches(train_set.examples, run.max_tokens, seed=run.seed + epoch):
            if not left():
                break
            batch = collate([train_set[i] for i in idx], tokenizer.pad_id)
            losses.append(train_step(model, batch, opt, run.bf16))
            sched.step()
            step += 1
        bleu = score(run, model, dev, tokenizer, GenerateOptions(num_beams=1))[0].bleu4
        load.sample()
        kept.append((bleu, epoch, copy.deepcopy(model.state_dict())))
        kept = sorted(kept, key=lambda k: -k[0])[: run.average]
        log.info(
            "epoch %d: %d steps, loss %.3f, dev greedy BLEU-4 %.2f, %.1f min (%s), load %.1f",
            epoch, step, sum(losses) / max(1, len(losses)), bleu, (now(run.clock) - t0) / 60,
            run.clock, load.samples[-1],
        )  # fmt: skip
    return kept, epoch, step


def average_weights(states: list[dict]) -> dict:
    """The element-wise mean of state dicts (integer buffers taken from the first)."""
    avg = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            avg[k] = sum(s[k] for s in states) / len(states)
        else:
            avg[k] = v
    return avg


def tune_length_penalty(run: Run, model, dev, tokenizer):
    """Beam-5 dev scores for each length penalty: (scores, hyps, options) of the best BLEU-4."""
    results = []
    for lp in run.length_penalties:
        options = GenerateOptions(5, lp, 100)
        scores, hyps = score(run, model, dev, tokenizer, options)
        log.info(
            "beam 5, length penalty %.2f: dev BLEU-4 %.2f (BP %.3f)", lp, scores.bleu4, scores.bp
        )
        results.append((scores, hyps, options))
    return max(results, key=lambda r: r[0].bleu4)


def save_run(folder: Path, run: Run, model, tokenizer, options, dev, dev_scores, hyps, info):
    """The averaged model as a G2T run folder that `load_translation_run` reads."""
    spec = ModelSpec(model.mbart.config.to_dict(), model.options, options, "g2t", run.lang)
    saved = TranslationRun.create(folder, spec)
    tokenizer.save(saved.tokenizer_path)
    write_checkpoint(folder, AVERAGED, model, **info, metric=dev_scores.bleu4)
    saved.write_metrics({"dev": dataclasses.asdict(dev_scores), "bench": info})
    saved.write_predictions("dev", [(e.name, h, e.text) for e, h in zip(dev.examples, hyps)])
    log.info("saved %s", folder)


def stage_result(run: Run, epochs: int, run_dir: Path) -> Result:
    """Train with `slt train g2t`'s stage on the same settings, then sweep the length penalty
    on its best checkpoint."""
    from slt_training.config import G2TConfig, validate_config
    from slt_training.stages import g2t

    t_start = time.time()
    raw = {
        "run_dir": str(run_dir),
        "data": {"root": str(run.dataset), "lang": run.lang, "max_tokens": run.max_tokens},
        "tokenizer": {"vocab_size": run.vocab_size, "glosses": run.glosses},
        "model": {"size": "small", "dropout": run.dropout, "label_smoothing": run.label_smoothing},
        "generation": {"num_beams": 5, "length_penalty": 1.0, "max_length": 100},
        "training": {
            "epochs": epochs,
            "lr": run.lr,
            "betas": [0.9, 0.98],
            "weight_decay": 0.0,
            "warmup_steps": run.warmup,
            "max_grad_norm": 1.0,
            "dev_beam_size": 1,
            "keep_best_n": 1,
            "cpu_threads": run.threads,
            "max_minutes": run.minutes * 1.5,  # a safety stop; the schedule ends at `epochs`
            "seed": run.seed,
        },
    }
    result = g2t.train(validate_config(raw, G2TConfig, "bench_g2t"))
    train_min = (time.time() - t_start) / 60
    trained = load_translation_run(result.run_dir)
    dev = TranslationDataset(read_jsonl(run.dataset / "dev.jsonl"), trained.tokenizer)
    dev_scores, _, options = tune_length_penalty(run, trained.model, dev, trained.tokenizer)
    test_scores = None
    if run.test:
        test = TranslationDataset(read_jsonl(run.test), trained.tokenizer)
        test_scores = score(run, trained.model, test, trained.tokenizer, options)[0]
    steps = TranslationRun.open(result.run_dir).metrics()["steps"]
    recipe = (
        f"mBART {parameter_count(trained.model.mbart) / 1e6:.1f} M (small), "
        f"BPE {len(trained.tokenizer)}, {epochs} epochs / {steps} steps, best epoch "
        f"{result.best_epoch}, beam 5, length penalty {options.length_penalty}"
    )
    total_min = (time.time() - t_start) / 60
    return Result(
        "slt train g2t (stage)", recipe, dev_scores, test_scores, train_min, total_min, total_min
    )


def loop_result(run: Run, load: LoadMeter) -> tuple[Result, int]:
    """Train with the plain loop (or score a `--load` folder); the result and its epochs."""
    t_start, wall_start = now(run.clock), time.time()
    dev_clips = read_jsonl(run.dataset / "dev.jsonl")
    if run.load:
        loaded = load_translation_run(run.load)
        model, tok, options = loaded.model, loaded.tokenizer, loaded.generation
        dev = TranslationDataset(dev_clips, tok)
        dev_scores, _ = score(run, model, dev, tok, options)
        info = json.loads((run.load / CHECKPOINTS / BEST).read_text("utf-8"))
        recipe = f"loaded from {run.load}: {info.get('recipe', '')}"
        train_min, epochs = float(info.get("train_minutes", 0.0)), int(info.get("epoch", 0))
        saved = (info.get("total_minutes", 0.0), info.get("wall_minutes", 0.0), info.get("clock"))
    else:
        train_clips = read_jsonl(run.dataset / "train.jsonl")
        tok = train_tokenizer(
            [c.text for c in train_clips],
            [c.glosses for c in train_clips],
            TokenizerOptions(
                vocab_size=run.vocab_size, glosses=run.glosses, lang=LANG_TOKENS[run.lang]
            ),
        )
        train_set, dev = TranslationDataset(train_clips, tok), TranslationDataset(dev_clips, tok)
        shape = preset(
            "small",
            encoder_layers=run.encoder_layers,
            decoder_layers=run.decoder_layers,
            d_model=run.d_model,
            ffn=run.ffn,
            heads=run.heads,
            dropout=run.dropout,
            attention_dropout=run.attention_dropout,
        )
        mbart = build_mbart(shape, tok)
        model = TranslationModel(mbart, TranslationOptions(label_smoothing=run.label_smoothing))
        kept, epochs, steps = train(run, model, train_set, dev, tok, load)
        train_min = (now(run.clock) - t_start) / 60
        model.load_state_dict(average_weights([k[2] for k in kept]))
        dev_scores, hyps, options = tune_length_penalty(run, model, dev, tok)
        recipe = (
            f"mBART {parameter_count(mbart) / 1e6:.1f} M from scratch "
            f"({run.encoder_layers}+{run.decoder_layers} layers, d {run.d_model}, ffn {run.ffn}, "
            f"dropout {run.dropout}), BPE {len(tok)} (glosses as {run.glosses}), "
            f"label smoothing {run.label_smoothing}, lr {run.lr}, {run.max_tokens} tokens/batch"
            f"{', bf16 autocast' if run.bf16 else ''}, "
            f"{epochs} epochs / {steps} steps, average of epochs {sorted(k[1] for k in kept)}, "
            f"beam 5, length penalty {options.length_penalty}"
        )
        if run.save:
            info = {"epoch": epochs, "step": steps, "train_minutes": round(train_min, 2),
                    "total_minutes": round((now(run.clock) - t_start) / 60, 2),
                    "wall_minutes": round((time.time() - wall_start) / 60, 2),
                    "clock": run.clock}  # fmt: skip
            save_run(run.save, run, model, tok, options, dev, dev_scores, hyps,
                     info | {"recipe": recipe})  # fmt: skip
    test_scores = None
    if run.test:  # once, at the end, with what dev chose
        test = TranslationDataset(read_jsonl(run.test), tok)
        test_scores, _ = score(run, model, test, tok, options)
    total_min, wall_min = (now(run.clock) - t_start) / 60, (time.time() - wall_start) / 60
    clock = run.clock
    if run.load:  # the minutes of the run that trained it (scoring here not counted)
        total_min, wall_min, clock = saved[0] or train_min, saved[1], saved[2] or "wall"
    result = Result("ours", recipe, dev_scores, test_scores, train_min, total_min, wall_min, clock)
    return result, epochs


def main(argv: list[str] | None = None) -> None:
    run = parse_args(argv)
    torch.manual_seed(run.seed)
    torch.set_num_threads(run.threads)
    load = LoadMeter()
    results = []
    epochs = run.epochs
    if run.driver in ("loop", "both"):
        result, epochs = loop_result(run, load)
        results.append(result)
    if run.driver in ("stage", "both"):  # `both`: as many epochs as the loop reached
        with tempfile.TemporaryDirectory() as tmp:
            results.append(stage_result(run, epochs, Path(tmp) / "g2t"))
    load.sample()
    print_table(run, results, load)


def print_table(run: Run, results: list[Result], load: LoadMeter) -> None:
    """One markdown table: ours (dev, test), the peer's published row, and the ratios."""
    fmt = lambda s: [f"{v:.2f}" for v in (s.bleu1, s.bleu2, s.bleu3, s.bleu4, s.rouge_l)]  # noqa: E731
    device, blank = device_name(run.threads), [""] * 3
    rows = [
        ["model", "split", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "BP",
         "minutes", "device", "load avg"],
        ["---"] * 11,
    ]  # fmt: skip
    for r in results:
        minutes = f"{r.train_min:.1f} train, {r.total_min:.1f} total ({r.clock})"
        if r.clock != "wall":
            minutes += f"; {r.wall_min:.1f} wall"
        rows.append([r.label, "dev", *fmt(r.dev), f"{r.dev.bp:.3f}", minutes, device, str(load)])
        if r.test is not None:
            rows.append([r.label, "test", *fmt(r.test), f"{r.test.bp:.3f}", "", "", ""])
    is_phoenix = run.dataset.resolve() == DATA.resolve()
    if is_phoenix:
        name, dev4, test4, peer_min, peer_bp = PEER
        rows += [
            [name, "dev", *blank, f"{dev4:.1f}", "", peer_bp, f"~{peer_min:.0f}", "this CPU", ""],
            [name, "test", *blank, f"{test4:.1f}", "", "", "", "", ""],
        ]
        for r in results:
            rows.append([f"ratio {r.label} / peer", "dev", *blank, f"{r.dev.bleu4 / dev4:.2f}",
                         "", "", f"{r.total_min / peer_min:.2f} ({r.clock} / wall)", "", ""])  # fmt: skip
            if r.test is not None:
                rows.append([f"ratio {r.label} / peer", "test", *blank,
                             f"{r.test.bleu4 / test4:.2f}", "", "", "", "", ""])  # fmt: skip
    first = results[0]
    print(f"\nG2T on {run.dataset.name}: dev {first.dev.n} sentences, "
          + (f"test {first.test.n}" if first.test is not None else "test not scored (not here)"))  # fmt: skip
    for r in results:
        print(f"{r.label}: {r.recipe}")
    if not is_phoenix:
        print("(no published peer row for this corpus)")
    print()
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    print(f"\nsacrebleu: {first.dev.signature}")


def parse_args(argv) -> Run:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=26.0, help="training time budget")
    p.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="what --minutes counts: wall time, or this process's CPU time (a shared CPU)",
    )
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--lang", choices=sorted(LANG_TOKENS), default="de", help="text language")
    p.add_argument("--glosses", choices=("text", "tokens"), default="text")
    p.add_argument("--vocab-size", type=int, default=3000, help="BPE pieces (6000: word level)")
    p.add_argument("--encoder-layers", type=int, default=3)
    p.add_argument("--decoder-layers", type=int, default=3)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--ffn", type=int, default=1024, help="feed-forward inner size")
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--attention-dropout", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--max-tokens", type=int, default=1000, help="padded tokens per batch")
    p.add_argument("--bf16", action="store_true", help="train under bfloat16 autocast")
    p.add_argument("--average", type=int, default=3, help="best epochs averaged at the end")
    p.add_argument("--length-penalties", default="1.0,1.25,1.5")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--test", type=Path, help="a test.jsonl scored once at the end")
    p.add_argument("--save", type=Path, help="write the averaged model here as a G2T run folder")
    p.add_argument("--load", type=Path, help="score a folder --save wrote instead of training")
    p.add_argument(
        "--driver",
        choices=("loop", "stage", "both"),
        default="loop",
        help="train with the plain loop, the G2T stage (slt train g2t), or both in turn",
    )
    p.add_argument("--epochs", type=int, default=20, help="--driver stage: epochs to train")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lps = tuple(float(x) for x in a.length_penalties.split(","))
    run = Run(a.dataset, a.lang, a.threads, a.minutes, a.clock, a.glosses, a.vocab_size, a.encoder_layers,
              a.decoder_layers, a.d_model, a.ffn, a.heads, a.dropout, a.attention_dropout,
              a.label_smoothing, a.lr, a.warmup, a.max_tokens, a.bf16, a.average, lps, a.seed, a.test,
              a.save, a.load, a.driver, a.epochs)  # fmt: skip
    if a.load and a.driver != "loop":
        raise SystemExit("--load scores a saved loop model; use it with --driver loop")
    needed = [a.dataset / "dev.jsonl"] + ([] if a.load else [a.dataset / "train.jsonl"])
    for path in needed + ([a.test] if a.test else []):
        if not path.is_file():
            raise SystemExit(f"{path}: not found (the corpora live in ../shared/data)")
    return run


if __name__ == "__main__":
    main()
