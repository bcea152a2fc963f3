"""CTC decoding of gloss log-probs: greedy vs prefix beam search (ours) vs a naive beam.

    python benchmarks/bench_ctc_decoding.py [--clips 40] [--steps 100] [--vocab 1000]

Inputs are synthetic S2G outputs, since no trained model exists yet: for random
true gloss sequences (one gloss per ~6 steps), blank-dominated steps and 1-3
"spike" steps per gloss where the gloss has probability 0.25-0.95, a distractor
gloss a little, blank the rest (the shape CTC models produce). The naive beam is
the textbook dict-of-prefixes loop over every symbol in pure Python (as in
Hannun, "Sequence Modeling with CTC", Distill 2017); it serves as the "other
implementation" (torchaudio's decoder needs a torch build matching ours) and as a
check that ours finds the same hypotheses with the same scores. Time is per clip,
best of `--repeats`; agreement is the share of clips whose best hypothesis equals
that of our beam 5; WER is against the true glosses (jiwer).
"""

from __future__ import annotations

import argparse
import math
import time
from collections import defaultdict
from collections.abc import Callable

import jiwer
import numpy as np
from rich.console import Console
from rich.table import Table

from slt_serve.decoding import ctc_greedy_decode, ctc_prefix_beam_search

Decoder = Callable[[np.ndarray], tuple[tuple[int, ...], float]]


def spiky_clip(rng: np.random.Generator, steps: int, vocab: int) -> tuple[list[int], np.ndarray]:
    """Random true glosses and (steps, vocab) log-probs shaped like a CTC model's output."""
    labels, rows = [], []
    while len(rows) < steps - 4:
        label, distractor = (int(v) for v in rng.integers(1, vocab, size=2))
        labels.append(label)
        rows += [{0: 0.9}] * int(rng.integers(2, 5))
        for _ in range(rng.integers(1, 4)):
            p = rng.uniform(0.25, 0.95)
            d = 0.0 if distractor == label else rng.uniform(0, 0.3) * (1 - p)
            rows.append({0: 0.8 * (1 - p - d), distractor: d, label: p})
    rows = (rows + [{0: 0.9}] * steps)[:steps]
    rest = np.array([1 - sum(r.values()) for r in rows])
    probs = rng.dirichlet(np.ones(vocab), size=steps) * rest[:, None]
    for t, row in enumerate(rows):
        for symbol, p in row.items():
            probs[t, symbol] += p
    return labels, np.log(probs)


def _lse(*xs: float) -> float:
    top = max(xs)
    return top if top == -math.inf else top + math.log(sum(math.exp(x - top) for x in xs))


def naive_beam(lp: np.ndarray, beam_size: int, blank: int = 0) -> tuple[tuple[int, ...], float]:
    """Textbook CTC prefix beam search: a dict of prefixes, every symbol of every step."""
    beam = [((), (0.0, -math.inf))]
    for frame in lp.tolist():
        nxt: dict = defaultdict(lambda: (-math.inf, -math.inf))
        for prefix, (pb, pnb) in beam:
            for s, p in enumerate(frame):
                if s == blank:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (_lse(b, pb + p, pnb + p), nb)
                    continue
                last = prefix[-1] if prefix else None
                b, nb = nxt[prefix + (s,)]
                gain = pb + p if s == last else _lse(pb + p, pnb + p)
                nxt[prefix + (s,)] = (b, _lse(nb, gain))
                if s == last:
                    b, nb = nxt[prefix]
                    nxt[prefix] = (b, _lse(nb, pnb + p))
        beam = sorted(nxt.items(), key=lambda kv: _lse(*kv[1]), reverse=True)[:beam_size]
    prefix, (pb, pnb) = beam[0]
    return prefix, _lse(pb, pnb)


def decoders(naive_beam_size: int) -> dict[str, Decoder]:
    def ours(size: int) -> Decoder:
        return lambda lp: (lambda h: (h.tokens, h.log_prob))(ctc_prefix_beam_search(lp, size)[0])

    return {
        "greedy": lambda lp: (tuple(ctc_greedy_decode(lp)), float("nan")),
        "beam 1 (ours)": ours(1),
        "beam 5 (ours)": ours(5),
        "beam 10 (ours)": ours(10),
        f"beam {naive_beam_size} (naive Python)": lambda lp: naive_beam(lp, naive_beam_size),
    }


def measure(decode: Decoder, clips: list[np.ndarray], repeats: int):
    """Best-of-`repeats` seconds per clip, and the outputs of the last run."""
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        outputs = [decode(lp) for lp in clips]
        best = min(best, (time.perf_counter() - start) / len(clips))
    return best, outputs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-clips", type=int, default=5, help="the naive beam is slow")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    data = [spiky_clip(rng, args.steps, args.vocab) for _ in range(args.clips)]
    truth = [" ".join(map(str, labels)) for labels, _ in data]
    clips = [lp for _, lp in data]
    results = {}
    for name, decode in decoders(5).items():
        n = args.naive_clips if "naive" in name else len(clips)
        results[name] = (n, *measure(decode, clips[:n], 1 if "naive" in name else args.repeats))
    _print(results, truth, args)


def _print(results: dict, truth: list[str], args: argparse.Namespace) -> None:
    greedy_time = results["greedy"][1]
    reference = results["beam 5 (ours)"][2]
    table = Table(
        title=f"CTC decoding, {args.steps} steps × {args.vocab} symbols, per clip "
        f"(best of {args.repeats}; naive: 1 run)"
    )
    for col in ("decoder", "clips", "ms/clip", "× greedy", "= beam 5 (ours)", "WER %", "Δ log P"):
        table.add_column(col, justify="left" if col == "decoder" else "right")
    for name, (n, seconds, outputs) in results.items():
        same = sum(o[0] == r[0] for o, r in zip(outputs, reference, strict=False)) / n
        gap = max(abs(o[1] - r[1]) for o, r in zip(outputs, reference, strict=False))
        hyps = [" ".join(map(str, o[0])) for o in outputs]
        table.add_row(
            name,
            str(n),
            f"{seconds * 1e3:.2f}",
            f"{seconds / greedy_time:.0f}",
            f"{same:.0%}",
            f"{100 * jiwer.wer(truth[:n], hyps):.1f}",
            "-" if math.isnan(gap) else f"{gap:.1e}",
        )
    Console(width=160).print(table)
    print(
        "Δ log P: largest difference of the best hypothesis' log-probability from our beam 5. "
        "The naive row covers only the first clips (its agreement, Δ and WER are on those). "
        "Inputs synthetic (no trained S2G model yet)."
    )


if __name__ == "__main__":
    main()
