"""G2T quality on PHOENIX-2014T on this CPU: a small mBART from scratch vs the reference figure.

    python benchmarks/bench_g2t.py --minutes 25 [--glosses text|tokens] [--threads 1]
    python benchmarks/bench_g2t.py --dataset ../shared/data/csl-daily --lang zh

Data: ../shared/data/phoenix-2014t (RWTH-PHOENIX-Weather-2014T as distributed by
TwoStream-SLT, CC BY-NC-SA 3.0): train 7 096, dev 519. A BPE tokenizer is trained
on the train text (and glosses, `--glosses text`), a small mBART (3+3 layers,
d_model 256) is trained from scratch for `--minutes` of wall time with a plain
loop (AdamW, linear warm-up then linear decay to zero at the time budget, batches
by tokens, label smoothing). After each epoch dev is translated greedily and the
epoch's weights are kept when its dev BLEU-4 is among the best `--average`; at the
end the kept weights are averaged, and beam search (5 beams) is scored on dev for
each length penalty of `--length-penalties`: the best is reported. Selection and
tuning use dev only (the test split is not here).

The row it is compared with is the data README's measurement on this machine: a
6.6 M-parameter BART (3+3 layers, d_model 256, word-level vocabulary) trained from
scratch with transformers' Seq2SeqTrainer, beam 5: dev BLEU-4 24.9 after ~23 min.
Its other scores were not published, so they are blank. Minutes are wall time on a
CPU shared with other jobs; the training budget is fixed, so sharing costs epochs.
"""

from __future__ import annotations

import argparse
import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from slt_training.data.annotations import read_jsonl
from slt_training.data.text_data import TextBatch, TranslationDataset, collate, token_batches
from slt_training.metrics import evaluate_text
from slt_training.models.translation import GenerateOptions, TranslationModel, TranslationOptions
from slt_training.text.mbart import build_mbart, parameter_count, preset
from slt_training.text.tokenizer import TokenizerOptions, train_tokenizer

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "phoenix-2014t"
REFERENCE = ("BART 6.6 M, Seq2SeqTrainer (data README)", 24.9, 23.0)  # PHOENIX-2014T dev
LANG_TOKENS = {"de": "de_DE", "zh": "zh_CN", "vi": "vi_VN", "en": "en_XX"}
log = logging.getLogger("bench_g2t")


@dataclass(frozen=True)
class Run:
    """One training run's settings (the command-line options)."""

    dataset: Path
    lang: str
    threads: int
    minutes: float
    glosses: str
    vocab_size: int
    dropout: float
    label_smoothing: float
    lr: float
    warmup: int
    max_tokens: int
    average: int
    length_penalties: tuple[float, ...]
    seed: int


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


def dev_bleu(run: Run, model, dev, tokenizer, options: GenerateOptions):
    hyps = translate_all(model, dev, tokenizer, options)
    return evaluate_text(hyps, [e.text for e in dev.examples], run.lang)


def train_step(model, batch: TextBatch, optimizer) -> float:
    model.train()
    out = model(labels=batch.labels, **batch.model_inputs())
    optimizer.zero_grad(set_to_none=True)
    out.loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    return float(out.loss.detach())


def train(run: Run, model, train_set, dev, tokenizer) -> tuple[list, int]:
    """Train for the time budget; the best `average` epochs' weights by greedy dev BLEU-4."""
    t0, step, epoch = time.time(), 0, 0
    opt = torch.optim.AdamW(model.parameters(), lr=run.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, time.time() - t0, run))
    kept: list[tuple[float, int, dict]] = []
    while time.time() - t0 < run.minutes * 60:
        epoch += 1
        losses = []
        for idx in token_batches(train_set.examples, run.max_tokens, seed=run.seed + epoch):
            if time.time() - t0 >= run.minutes * 60:
                break
            batch = collate([train_set[i] for i in idx], tokenizer.pad_id)
            losses.append(train_step(model, batch, opt))
            sched.step()
            step += 1
        bleu = dev_bleu(run, model, dev, tokenizer, GenerateOptions(num_beams=1)).bleu4
        kept.append((bleu, epoch, copy.deepcopy(model.state_dict())))
        kept = sorted(kept, key=lambda k: -k[0])[: run.average]
        log.info(
            "epoch %d: %d steps, loss %.3f, dev greedy BLEU-4 %.2f, %.1f min",
            epoch, step, sum(losses) / max(1, len(losses)), bleu, (time.time() - t0) / 60,
        )  # fmt: skip
    return kept, epoch


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
    """Beam-5 dev scores for each length penalty; the best by BLEU-4."""
    results = []
    for lp in run.length_penalties:
        scores = dev_bleu(run, model, dev, tokenizer, GenerateOptions(5, lp, 100))
        log.info(
            "beam 5, length penalty %.1f: dev BLEU-4 %.2f (BP %.3f)", lp, scores.bleu4, scores.bp
        )
        results.append((scores.bleu4, lp, scores))
    return max(results, key=lambda r: r[0])


def main(argv: list[str] | None = None) -> None:
    run = parse_args(argv)
    torch.manual_seed(run.seed)
    torch.set_num_threads(run.threads)
    t_start = time.time()
    train_clips = read_jsonl(run.dataset / "train.jsonl")
    dev_clips = read_jsonl(run.dataset / "dev.jsonl")
    tok = train_tokenizer(
        [c.text for c in train_clips],
        [c.glosses for c in train_clips],
        TokenizerOptions(
            vocab_size=run.vocab_size, glosses=run.glosses, lang=LANG_TOKENS[run.lang]
        ),
    )
    train_set, dev = TranslationDataset(train_clips, tok), TranslationDataset(dev_clips, tok)
    mbart = build_mbart(preset("small", dropout=run.dropout), tok)
    model = TranslationModel(mbart, TranslationOptions(label_smoothing=run.label_smoothing))
    kept, epochs = train(run, model, train_set, dev, tok)
    train_min = (time.time() - t_start) / 60
    model.load_state_dict(average_weights([k[2] for k in kept]))
    bleu4, lp, scores = tune_length_penalty(run, model, dev, tok)
    total_min = (time.time() - t_start) / 60
    print_table(run, scores, lp, epochs, [k[1] for k in kept], parameter_count(mbart), len(tok),
                train_min, total_min)  # fmt: skip


def print_table(run, s, lp, epochs, kept, params, vocab, train_min, total_min) -> None:
    """One markdown table: ours, the reference figure, and their ratio."""
    ours = (
        f"mBART {params / 1e6:.1f} M from scratch, BPE {vocab}, glosses as {run.glosses}, "
        f"{epochs} epochs, average of epochs {sorted(kept)}, beam 5, length penalty {lp}"
    )
    name, ref_bleu4, ref_min = REFERENCE
    if run.dataset.resolve() != DATA.resolve():  # the reference figure is PHOENIX-2014T's
        name, ref_bleu4, ref_min = "(no reference figure for this corpus)", float("nan"), 0.0
    rows = [
        ("model", "dev BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L", "BP", "minutes"),
        ("---",) * 8,
        (ours, *(f"{v:.2f}" for v in (s.bleu1, s.bleu2, s.bleu3, s.bleu4, s.rouge_l)),
         f"{s.bp:.3f}", f"{train_min:.1f} train, {total_min:.1f} total"),
        (name, "", "", "", f"{ref_bleu4:.1f}", "", "", f"~{ref_min:.0f}"),
        ("ratio ours / reference", "", "", "", f"{s.bleu4 / ref_bleu4:.2f}", "", "",
         f"{total_min / ref_min:.2f}" if ref_min else ""),
    ]  # fmt: skip
    print(f"G2T on {run.dataset.name} dev ({s.n} sentences), {run.threads} CPU thread(s)\n")
    print("\n".join("| " + " | ".join(r) + " |" for r in rows))
    print(f"\nsacrebleu: {s.signature}")


def parse_args(argv) -> Run:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=25.0, help="training wall-time budget")
    p.add_argument("--dataset", type=Path, default=DATA)
    p.add_argument("--glosses", choices=("text", "tokens"), default="text")
    p.add_argument("--vocab-size", type=int, default=3000)
    p.add_argument("--lang", choices=sorted(LANG_TOKENS), default="de", help="text language")
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--label-smoothing", type=float, default=0.1)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=100, help="warm-up steps")
    p.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    p.add_argument("--max-tokens", type=int, default=1000, help="padded tokens per batch")
    p.add_argument("--average", type=int, default=3, help="best epochs averaged at the end")
    p.add_argument("--length-penalties", default="1.0,1.5,2.0")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    lps = tuple(float(x) for x in a.length_penalties.split(","))
    run = Run(a.dataset, a.lang, a.threads, a.minutes, a.glosses, a.vocab_size, a.dropout, a.label_smoothing, a.lr,
              a.warmup, a.max_tokens, a.average, lps, a.seed)  # fmt: skip
    if not (a.dataset / "train.jsonl").is_file():
        raise SystemExit(
            f"{a.dataset}: no train.jsonl (the PHOENIX-2014T data lives in ../shared/data)"
        )
    return run


if __name__ == "__main__":
    main()
