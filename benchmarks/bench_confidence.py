"""How well the runtime's confidences are calibrated: reliability tables, ECE and a PNG.

    python benchmarks/bench_confidence.py [--bundle BUNDLE] [--data DS] [--synth DIR]
        [--max-clips N] [--bins 10] [--png confidence.png]

Bundle: `--bundle`, else the sample model shipped in the package. Clips: the dev and test
splits of `--data` (a dataset root), else of `slt data synth`'s default corpus (cpu
preset, seed 0, the corpus the sample model was trained on), whose dev and test clips
alone are rendered into `--synth` (kept, reused on the next run).

Every clip is translated by the `Translator` as served. Correctness: a gloss is right
when it is matched to the same reference gloss in the alignment of the two sequences
(`confidence.aligned_correct`), a sentence when its text equals the reference
(case and spaces aside). Tables, on dev:

1. per gloss, each candidate confidence side by side (the CTC posterior of the gloss
   over its span: mean (served), min, max, geometric mean): ECE, and bins of the
   served one (count, mean confidence, accuracy);
2. per sentence: exp(mean token log-prob) (served) against the mean and the minimum
   gloss confidence: ECE, and bins of the served one;
3. the thresholds and curves `slt export` would write (fitted on dev), applied to test:
   accuracy of the results above and under each threshold, how many are flagged, and the
   test ECE of the raw confidence against the calibrated one (mapped through the dev
   curve: what a calibrated bundle serves).

Tables 1 and 2 are of the raw confidences (what an uncalibrated bundle such as the
sample model serves, and what calibration starts from).

The PNG (`--png`) draws the reliability diagrams of (1) and (2): accuracy per bin against
the diagonal, with the count of each bin.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt_serve import sample_model
from slt_serve.confidence import (
    GLOSS_MEASURES,
    SERVED_MEASURE,
    Reliability,
    aligned_correct,
    apply_curve,
    fit_threshold,
    gloss_confidences,
    isotonic_curve,
    reliability,
    same_text,
)
from slt_serve.decoding import ctc_decode_spans
from slt_serve.translator import BLANK_ID, Translator
from slt_serve.video import iter_frames

SENTENCE_MEASURES = ("exp mean token log-prob", "mean gloss confidence", "min gloss confidence")


@dataclass
class Split:
    """One split's confidences and correctness, per gloss (each measure) and per sentence."""

    gloss_conf: dict[str, list[float]]
    gloss_ok: list[bool]
    sent_conf: dict[str, list[float]]
    sent_ok: list[bool]


def render_synth(root: Path) -> Path:
    """The dev and test clips of `slt data synth`'s default corpus, rendered into `root`."""
    from slt_training.data.synth.corpus import (
        options_for,
        plan_corpus,
        render_clip,
        write_annotations,
    )

    opts = options_for("cpu")
    plans = plan_corpus(opts)
    (root / "videos").mkdir(parents=True, exist_ok=True)
    (root / "keypoints").mkdir(exist_ok=True)
    write_annotations(root, plans, opts.layout)
    todo = [p for p in plans if p.split in ("dev", "test")]
    todo = [p for p in todo if not (root / "videos" / f"{p.name}.mp4").is_file()]
    for n, plan in enumerate(todo, 1):
        render_clip((root, plan, opts))
        if n % 50 == 0:
            print(f"rendered {n}/{len(todo)} clips", file=sys.stderr)
    return root


def measure_split(translator: Translator, root: Path, split: str, limit: int | None) -> Split:
    """Translate a split's clips; every candidate confidence with the correctness it predicts."""
    from slt_training.data.annotations import load_split

    out = Split({m: [] for m in GLOSS_MEASURES}, [], {m: [] for m in SENTENCE_MEASURES}, [])
    for clip in load_split(root, split)[:limit]:
        result = translator.translate(root / clip.video)
        hyp = [s.gloss for s in result.gloss_spans]
        out.gloss_ok += aligned_correct(hyp, clip.gloss.split())
        served = [s.confidence for s in result.gloss_spans]
        others = alternative_gloss_confidences(translator, root / clip.video)
        if others[SERVED_MEASURE] != served:
            sys.exit(f"{clip.name}: the recognizer run again found other glosses")
        for measure, values in others.items():
            out.gloss_conf[measure] += values
        out.sent_ok.append(same_text(result.text, clip.text))
        out.sent_conf[SENTENCE_MEASURES[0]].append(result.confidence)
        out.sent_conf[SENTENCE_MEASURES[1]].append(float(np.mean(served)) if served else 0.0)
        out.sent_conf[SENTENCE_MEASURES[2]].append(float(np.min(served)) if served else 0.0)
    return out


def alternative_gloss_confidences(translator: Translator, video: Path) -> dict[str, list[float]]:
    """Each measure over the same spans the translator found (a single_stream bundle's
    recognizer run again on the clip's frames; its glosses are the served ones)."""
    spec = translator.spec
    frames = iter_frames(video, size=spec.frame_size, fps=spec.fps)
    log_probs, _, _ = translator.s2g.run((f, None) for f in frames)
    spans = ctc_decode_spans(log_probs, translator.ctc_beam_size, BLANK_ID)
    spans = [s for s in spans if s.token not in (translator.vocab.blank_id, translator.vocab.pad_id)]
    return {m: gloss_confidences(log_probs, spans, m) for m in GLOSS_MEASURES}


def print_table(title: str, tables: dict[str, Reliability], served: str) -> None:
    print(f"\n{title}")
    print("| measure | items | accuracy | ECE |")
    print("|---|---:|---:|---:|")
    for name, t in tables.items():
        mark = " (served)" if name == served else ""
        print(f"| {name}{mark} | {t.count} | {t.accuracy:.3f} | {t.ece:.4f} |")
    print(f"\nbins of the served measure ({served}):")
    print("| bin | count | mean confidence | accuracy | gap |")
    print("|---|---:|---:|---:|---:|")
    for b in tables[served].bins:
        if b.count:
            gap = b.accuracy - b.confidence
            print(
                f"| {b.low:.1f}–{b.high:.1f} | {b.count} | {b.confidence:.3f} | "
                f"{b.accuracy:.3f} | {gap:+.3f} |"
            )


def print_thresholds(dev: Split, test: Split | None) -> None:
    """The thresholds export would fit on dev, and what they separate on test."""
    rows = [
        ("gloss", dev.gloss_conf[SERVED_MEASURE], dev.gloss_ok,
         test and test.gloss_conf[SERVED_MEASURE], test and test.gloss_ok),
        ("sentence", dev.sent_conf[SENTENCE_MEASURES[0]], dev.sent_ok,
         test and test.sent_conf[SENTENCE_MEASURES[0]], test and test.sent_ok),
    ]  # fmt: skip
    print("\nthresholds and curves fitted on dev (as slt export does), applied to test: the")
    print("flag, and the test ECE of the raw confidence vs the calibrated one (what is served):")
    print("| level | threshold | test items | flagged | accuracy flagged | accuracy kept "
          "| test ECE raw | test ECE calibrated |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for level, conf, ok, test_conf, test_ok in rows:
        threshold = fit_threshold(conf, ok)
        if not test_conf:
            print(f"| {level} | {threshold:.3f} | – | – | – | – | – | – |")
            continue
        c, k = np.asarray(test_conf), np.asarray(test_ok, dtype=float)
        low = c < threshold
        flagged, kept = (f"{k[sel].mean():.3f}" if sel.any() else "–" for sel in (low, ~low))
        curve = isotonic_curve(conf, ok)
        mapped = [apply_curve(curve, x) for x in c]
        raw, mapped = reliability(c, test_ok).ece, reliability(mapped, test_ok).ece
        print(f"| {level} | {threshold:.3f} | {c.size} | {int(low.sum())} | {flagged} | {kept} "
              f"| {raw:.4f} | {mapped:.4f} |")  # fmt: skip


def draw(path: Path, gloss: Reliability, sentence: Reliability, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.6))
    for ax, table, name in ((axes[0], gloss, "gloss spans"), (axes[1], sentence, "sentences")):
        bins = [b for b in table.bins if b.count]
        width = table.bins[0].high - table.bins[0].low
        ax.bar([b.low for b in bins], [b.accuracy for b in bins], width=width, align="edge",
               color="#4c72b0", edgecolor="white", label="accuracy")  # fmt: skip
        ax.plot([b.low + width / 2 for b in bins], [b.confidence for b in bins], "o",
                color="#dd8452", label="mean confidence of the bin")  # fmt: skip
        ax.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
        for b in bins:
            ax.annotate(str(b.count), (b.low + width / 2, min(b.accuracy, 0.93) + 0.02),
                        ha="center", fontsize=8)  # fmt: skip
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence", ylabel="accuracy",
               title=f"{name}: {table.count}, ECE {table.ece:.3f}")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=None, help="default: the sample model")
    parser.add_argument("--data", type=Path, default=None, help="dataset root with dev/test")
    parser.add_argument("--synth", type=Path, default=Path("data/synth-devtest"))
    parser.add_argument("--max-clips", type=int, default=None, help="per split")
    parser.add_argument("--bins", type=int, default=10)
    parser.add_argument("--png", type=Path, default=Path("confidence.png"))
    args = parser.parse_args(argv)

    translator = Translator.from_bundle(args.bundle or sample_model.bundle_path())
    if translator.kind != "single_stream" or translator.stage != "s2t":
        sys.exit("this benchmark compares measures on single_stream S2T bundles")
    root = args.data or render_synth(args.synth)
    dev = measure_split(translator, root, "dev", args.max_clips)
    test = measure_split(translator, root, "test", args.max_clips) if (root / "test.jsonl").is_file() else None
    print(f"bundle {translator.name} ({translator.digest[:19]}…), {root}: dev "
          f"{len(dev.sent_ok)} clips, {len(dev.gloss_ok)} glosses")  # fmt: skip
    gloss = {m: reliability(v, dev.gloss_ok, args.bins) for m, v in dev.gloss_conf.items()}
    sent = {m: reliability(v, dev.sent_ok, args.bins) for m, v in dev.sent_conf.items()}
    print_table("per gloss span (dev; correct: matched to the reference under alignment)",
                gloss, SERVED_MEASURE)  # fmt: skip
    print_table("per sentence (dev; correct: text equals the reference)", sent,
                SENTENCE_MEASURES[0])  # fmt: skip
    print_thresholds(dev, test)
    draw(args.png, gloss[SERVED_MEASURE], sent[SENTENCE_MEASURES[0]],
         f"{translator.name} on {root.name} dev: confidence against correctness")  # fmt: skip
    print(f"\nwrote {args.png}")
    if not math.isfinite(gloss[SERVED_MEASURE].ece):
        sys.exit("no glosses recognised")


if __name__ == "__main__":
    main()
