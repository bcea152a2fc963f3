"""How sure the model is of each gloss and each translation, and when to call it unsure.

Measures (numpy, no torch; the `Translator` attaches them to every `Result`):

* a gloss span's confidence: the CTC posterior of that gloss averaged over the steps
  of its span (`gloss_confidences`, measure "mean"). "min", "max" and "geomean" (the
  exp of the mean log-posterior) are there to compare (`benchmarks/bench_confidence.py`
  prints their calibration side by side); "mean" is the one served;
* a translation's score: the mean token log-probability of the chosen beam (EOS
  included), and its confidence `exp(score)`, the geometric-mean token probability;
  an S2G bundle (no text) uses the mean of its glosses' confidences instead;
* `low_confidence`: the result's confidence is under the bundle's sentence threshold.

Calibration (`Thresholds`) comes from the manifest's `confidence` section, which the
export fits on the run's dev clips (`calibrate`): a result is correct when its text
equals the reference (case and spaces aside; for S2G, the glosses), a gloss when it is
matched to the same reference gloss in the alignment of the two sequences
(`aligned_correct`). Accuracy is fitted as a non-decreasing function of the raw
confidence (isotonic regression, `isotonic`); the fit, as a step curve
(`isotonic_curve`), maps each raw confidence to the dev accuracy of results that sure
(`apply_curve`), and that is the confidence served: better calibrated than the raw one
on held-out clips (`benchmarks/bench_confidence.py`). The threshold is the lowest raw
confidence where the fitted accuracy reaches `TARGET_ACCURACY` (`fit_threshold`), so
`low_confidence` is exactly "calibrated confidence under 0.5": a result more likely wrong
than right on dev. A bundle with no calibration serves the raw confidences with
`DEFAULT_THRESHOLDS` (0.5 for both) and says so (`Thresholds.calibrated` is False; the
translator logs a warning).
"""

from __future__ import annotations

import difflib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

GLOSS_MEASURES = ("mean", "min", "max", "geomean")
SERVED_MEASURE = "mean"
TARGET_ACCURACY = 0.5  # a result is flagged where the fitted dev accuracy is below this
DEFAULT_GLOSS_THRESHOLD = 0.5  # used when the bundle holds no calibration
DEFAULT_SENTENCE_THRESHOLD = 0.5


Curve = tuple[tuple[float, float], ...]  # (raw confidence, calibrated) steps, raw ascending


@dataclass(frozen=True)
class Thresholds:
    """Raw confidence under which a gloss / a result counts as unsure, and the curves that
    map raw confidences to calibrated ones (empty: served raw)."""

    gloss: float = DEFAULT_GLOSS_THRESHOLD
    sentence: float = DEFAULT_SENTENCE_THRESHOLD
    calibrated: bool = False  # False: the documented defaults, not fitted on dev
    gloss_curve: Curve = ()
    sentence_curve: Curve = ()

    def unsure_gloss(self, confidence: float) -> bool:
        """Is a gloss with this *served* confidence unsure? Under a curve the served value is
        calibrated, and under `TARGET_ACCURACY` exactly where the raw one is under `gloss`."""
        return confidence < (TARGET_ACCURACY if self.gloss_curve else self.gloss)


DEFAULT_THRESHOLDS = Thresholds()


def gloss_confidences(
    log_probs: np.ndarray, spans: Sequence, measure: str = SERVED_MEASURE
) -> list[float]:
    """One confidence in [0, 1] per span (`decoding.TokenSpan`: token, start, end steps)."""
    if measure not in GLOSS_MEASURES:
        raise SltError(f"gloss confidence measure {measure!r}: choose one of {GLOSS_MEASURES}")
    lp = np.asarray(log_probs, dtype=np.float64)
    out = []
    for span in spans:
        run = lp[span.start : span.end + 1, span.token]
        if measure == "geomean":
            value = math.exp(float(run.mean()))
        else:
            value = float(getattr(np, measure)(np.exp(run)))
        out.append(round(min(1.0, max(0.0, value)), 4))
    return out


def sentence_confidence(score: float | None, gloss_confidence: Sequence[float]) -> float:
    """exp(mean token log-prob) for a translation; the mean gloss confidence without one."""
    if score is not None:
        return round(math.exp(score), 4)
    return round(float(np.mean(gloss_confidence)), 4) if len(gloss_confidence) else 0.0


# --- correctness ---------------------------------------------------------------------------


def aligned_correct(hyp: Sequence[str], ref: Sequence[str]) -> list[bool]:
    """Per hypothesis gloss: is it matched to the same reference gloss when the two
    sequences are aligned (longest matching blocks, difflib, no junk heuristic)?"""
    matcher = difflib.SequenceMatcher(None, list(hyp), list(ref), autojunk=False)
    correct = [False] * len(hyp)
    for block in matcher.get_matching_blocks():
        for i in range(block.a, block.a + block.size):
            correct[i] = True
    return correct


def same_text(hyp: str, ref: str) -> bool:
    """Exact match, case and runs of spaces aside: a sentence's correctness."""
    return " ".join(hyp.lower().split()) == " ".join(ref.lower().split())


# --- calibration ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Bin:
    """One bin of a reliability table."""

    low: float
    high: float
    count: int
    confidence: float  # mean confidence of its items (nan when empty)
    accuracy: float  # share correct (nan when empty)


@dataclass(frozen=True)
class Reliability:
    """Confidence against correctness in equal-width bins, and the expected calibration error."""

    bins: list[Bin]
    ece: float  # Σ_bins count/total · |accuracy − confidence|
    count: int
    accuracy: float


def reliability(confidence: Sequence[float], correct: Sequence[bool], bins: int = 10) -> Reliability:
    """The reliability table of `confidence` against `correct` over `bins` equal bins of [0, 1]."""
    conf = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    ok = np.asarray(correct, dtype=np.float64)
    if conf.shape != ok.shape:
        raise SltError(f"{conf.size} confidences for {ok.size} correctness values")
    index = np.minimum((conf * bins).astype(int), bins - 1)
    rows, ece = [], 0.0
    for b in range(bins):
        sel = index == b
        n = int(sel.sum())
        mean_conf = float(conf[sel].mean()) if n else float("nan")
        acc = float(ok[sel].mean()) if n else float("nan")
        if n:
            ece += n / conf.size * abs(acc - mean_conf)
        rows.append(Bin(b / bins, (b + 1) / bins, n, mean_conf, acc))
    overall = float(ok.mean()) if ok.size else float("nan")
    return Reliability(rows, ece, int(conf.size), overall)


def isotonic(x: Sequence[float], y: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """The non-decreasing least-squares fit of y on x (pool adjacent violators): sorted x, fit."""
    order = np.argsort(np.asarray(x, dtype=np.float64), kind="stable")
    xs = np.asarray(x, dtype=np.float64)[order]
    ys = np.asarray(y, dtype=np.float64)[order]
    means: list[float] = []
    weights: list[int] = []
    for value in ys:
        means.append(float(value))
        weights.append(1)
        while len(means) > 1 and means[-2] > means[-1]:
            w = weights[-2] + weights[-1]
            means[-2] = (means[-2] * weights[-2] + means[-1] * weights[-1]) / w
            weights[-2] = w
            means.pop()
            weights.pop()
    return xs, np.repeat(means, weights)


def isotonic_curve(confidence: Sequence[float], correct: Sequence[bool]) -> Curve:
    """The isotonic fit as steps: (first raw confidence of each block, its accuracy)."""
    xs, fit = isotonic(confidence, correct)
    starts = np.flatnonzero(np.r_[True, fit[1:] != fit[:-1]])
    return tuple((round(float(xs[i]), 4), round(float(fit[i]), 4)) for i in starts)


def apply_curve(curve: Curve, raw: float) -> float:
    """The calibrated value of a raw confidence: the step at or below it (the first step
    below the curve's start); `raw` itself when there is no curve."""
    if not curve:
        return raw
    below = [y for x, y in curve if x <= raw]
    return below[-1] if below else curve[0][1]


def fit_threshold(
    confidence: Sequence[float], correct: Sequence[bool], target: float = TARGET_ACCURACY
) -> float:
    """The lowest confidence at which the isotonic fit of accuracy reaches `target`:
    0 when it does everywhere (nothing flagged), 1 when nowhere (everything flagged)."""
    if len(confidence) == 0:
        raise SltError("no results to calibrate on")
    xs, fit = isotonic(confidence, correct)
    reached = np.flatnonzero(fit >= target)
    if reached.size == 0:
        return 1.0
    first = int(reached[0])
    return 0.0 if first == 0 else round(float(xs[first]), 4)


@dataclass(frozen=True)
class Calibration:
    """What `calibrate` found on dev; the manifest's `confidence` section is made from it."""

    thresholds: Thresholds  # with the curves
    clips: int
    glosses: int
    gloss: Reliability
    sentence: Reliability


def calibrate(results: Sequence, references: Sequence[tuple[str, str]]) -> Calibration:
    """Thresholds and curves fitted on `results` (`Result`s of dev clips, from a bundle not
    yet calibrated: raw confidences) against their (gloss, text) references; sentences are
    judged on text when the results have it, else on glosses."""
    if len(results) != len(references) or not results:
        raise SltError(f"{len(results)} results for {len(references)} references; need both, paired")
    gloss_conf, gloss_ok, sent_conf, sent_ok = [], [], [], []
    for result, (ref_gloss, ref_text) in zip(results, references, strict=True):
        hyp = [s.gloss for s in result.gloss_spans]
        gloss_conf += [s.confidence for s in result.gloss_spans]
        gloss_ok += aligned_correct(hyp, ref_gloss.split())
        sent_conf.append(result.confidence)
        right = same_text(result.text, ref_text) if result.score is not None else hyp == ref_gloss.split()
        sent_ok.append(right)
    thresholds = Thresholds(
        gloss=fit_threshold(gloss_conf, gloss_ok) if gloss_conf else DEFAULT_GLOSS_THRESHOLD,
        sentence=fit_threshold(sent_conf, sent_ok),
        calibrated=True,
        gloss_curve=isotonic_curve(gloss_conf, gloss_ok) if gloss_conf else (),
        sentence_curve=isotonic_curve(sent_conf, sent_ok),
    )
    return Calibration(
        thresholds, len(results), len(gloss_conf), reliability(gloss_conf, gloss_ok),
        reliability(sent_conf, sent_ok),
    )  # fmt: skip


# --- the review list -----------------------------------------------------------------------


class ReviewList:
    """`slt translate --review-below X`: the clips whose confidence is under X, for a person
    to annotate next. `read_results` takes the rows an earlier run left in the results file,
    `on_row` (batch.run's hook) each new one (a retried clip's latest row counts); `write`
    saves them, least sure first."""

    def __init__(self, below: float) -> None:
        if not 0 < below <= 1:
            raise SltError(f"--review-below {below}: give a confidence in (0, 1]")
        self.below = below
        self.entries: dict[str, dict] = {}  # video path → its entry

    def on_row(self, row: dict) -> None:
        self.entries.pop(row["path"], None)
        if row.get("ok") and row.get("confidence") is not None and row["confidence"] < self.below:
            self.entries[row["path"]] = review_entry(row)

    def read_results(self, path: str | os.PathLike, fmt: str) -> None:
        """The rows already in `slt translate`'s results file (JSONL or CSV); rows written
        before confidences existed, and a half-written last line, are passed over."""
        path = Path(path)
        if not path.is_file():
            return
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if fmt == "csv":
            import csv

            rows = [_typed_csv_row(r) for r in csv.DictReader(text.splitlines())]
        else:
            rows = [_json_or_none(line) for line in text.splitlines()]
        for row in rows:
            if row is not None and "path" in row:
                self.on_row(row)

    def write(self, path: str | os.PathLike) -> int:
        """JSONL, one clip a line, lowest confidence first; returns how many."""
        rows = sorted(self.entries.values(), key=lambda e: (e["confidence"], e["video"]))
        with atomic_write(path) as f:
            for entry in rows:
                f.write(json.dumps(entry, ensure_ascii=False) + "\n")
        return len(rows)


def _json_or_none(line: str) -> dict | None:
    try:
        row = json.loads(line)
    except json.JSONDecodeError:
        return None
    return row if isinstance(row, dict) else None


def _typed_csv_row(row: dict) -> dict | None:
    """A CSV row of slt translate with the types of its JSONL row, or None if it has none."""
    try:
        return row | {
            "ok": row["ok"] == "true",
            "confidence": float(row["confidence"]) if row.get("confidence") else None,
            "score": float(row["score"]) if row.get("score") else None,
            "low_confidence": row.get("low_confidence") == "true",
            "gloss_spans": json.loads(row["gloss_spans"]) if row.get("gloss_spans") else [],
        }
    except (KeyError, ValueError):
        return None


def review_entry(row: dict) -> dict:
    """One line of the review list: name, video, confidence, text and glosses with spans."""
    return {
        "name": Path(row["path"]).stem,
        "video": row["path"],
        "confidence": row["confidence"],
        "low_confidence": row["low_confidence"],
        "score": row["score"],
        "text": row["text"],
        "gloss": row["gloss"],
        "glosses": [
            {k: s[k] for k in ("gloss", "start_s", "end_s", "confidence")}
            for s in row["gloss_spans"]
        ],
    }
