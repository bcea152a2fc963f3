"""Scores the field reports for sign language translation: gloss WER, BLEU-1..4, ROUGE-L.

Computed as TwoStream-SLT's evaluation does, so that our numbers compare with
published ones:

- WER: corpus WER on whitespace glosses (jiwer: Levenshtein's unit costs), after
  the PHOENIX-2014T gloss clean-up where asked. The reference instead counts the
  errors of an alignment with weighted costs (deletion 3, insertion 3, substitution
  4), which is NOT always Levenshtein's total: for ref `A B C D E`, hyp `F G H A B`
  it aligns 2 matches, 3 insertions and 3 deletions (6 errors, WER 120) where
  Levenshtein counts 5 substitutions (WER 100). It also upper-cases glosses before
  the clean-up. `wer="reference"` (`slt evaluate --wer reference`) reproduces it;
  the default stays the field's standard.
- BLEU-n: sacrebleu corpus BLEU with n-gram orders 1..n, no smoothing, no
  tokenisation beyond splitting on whitespace (the reference's
  `raw_corpus_bleu`), on lowercased text.
- ROUGE-L: mean over sentences of the LCS F-measure with beta = P / R, as in
  the reference's `Rouge.py` (not rouge-score: its tokenizer drops ä/ö/ü/ß and
  Vietnamese letters, and its F uses beta = 1).

Languages written without spaces (Chinese) are scored on characters.
"""

from __future__ import annotations

import json
import logging
import os
import re
import unicodedata
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import jiwer
from rapidfuzz.distance import LCSseq
from sacrebleu.metrics import BLEU

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip, read_jsonl

logger = logging.getLogger(__name__)

TASKS = ("gloss", "text")
WER_STYLES = ("standard", "reference")  # Levenshtein (jiwer), or the reference's weighted alignment
REFERENCE_WER_COSTS = {
    "del": 3,
    "ins": 3,
    "sub": 4,
}  # TwoStream-SLT utils/metrics.py  # what `slt evaluate` scores: gloss sequences (WER) or translations
CHARACTER_LANGS = frozenset({"zh", "ja"})  # scored on characters: words are not space-separated
BLEU_ORDERS = (1, 2, 3, 4)  # BLEU-n reported for each n
_LANG_RE = re.compile(r"^[a-z]{2,3}$")

# The PHOENIX-2014T evaluation clean-up (TwoStream-SLT's `clean_phoenix_2014_trans`),
# in its order; applied to hypotheses and references alike. The order matters: the
# letter-merging rules run one after another over the output of the previous one.
_PHOENIX_2014T_RULES: tuple[tuple[re.Pattern, str], ...] = tuple(
    (re.compile(pattern), repl)
    for pattern, repl in (
        (r"__LEFTHAND__|__EPENTHESIS__|__EMOTION__", ""),  # annotation markers, not signs
        (r"\b__[^_ ]*__\b", ""),  # any other __X__ marker: __ON__, __OFF__, __PU__ …
        (r"\bloc-([^ ]*)\b", r"\1"),  # loc-REGION -> REGION
        (r"\bcl-([^ ]*)\b", r"\1"),  # cl-KOMMEN -> KOMMEN
        (r"\b([^ ]*)-PLUSPLUS\b", r"\1"),  # WOLKE-PLUSPLUS -> WOLKE
        (r"\b([A-Z][A-Z]*)RAUM\b", r"\1"),  # WALDRAUM -> WALD (a bare RAUM stays)
        (r"WIE AUSSEHEN", "WIE-AUSSEHEN"),
        # fingerspelled letters emitted as separate tokens are joined with '+': A B C -> A+B+C
        (r"^([A-Z]) ([A-Z][+ ])", r"\1+\2"),
        (r"[ +]([A-Z]) ([A-Z]) ", r" \1+\2 "),
        (r"([ +][A-Z]) ([A-Z][ +])", r"\1+\2"),
        (r"([ +][A-Z]) ([A-Z][ +])", r"\1+\2"),
        (r"([ +][A-Z]) ([A-Z][ +])", r"\1+\2"),
        (r"([ +]SCH) ([A-Z][ +])", r"\1+\2"),
        (r"([ +]NN) ([A-Z][ +])", r"\1+\2"),
        (r"([ +][A-Z]) (NN[ +])", r"\1+\2"),
        (r"([ +][A-Z]) ([A-Z])$", r"\1+\2"),
        (r" +", " "),
        # an all-capital gloss repeated is one sign held (also across '+': A+B B+C -> A+B+C)
        *[(r"(?<![\w-])(\b[A-Z]+(?![\w-])) \1(?![\w-])", r"\1")] * 4,
        (r" +", " "),
    )
)


@dataclass(frozen=True)
class GlossScores:
    """Gloss recognition scores over a corpus."""

    wer: float  # corpus WER in percent: 100 * (sub + dele + ins) / ref_len
    sub: int  # substituted glosses
    dele: int  # deleted glosses (in the reference, missing from the hypothesis)
    ins: int  # inserted glosses (in the hypothesis, not in the reference)
    ref_len: int  # reference glosses, after the clean-up
    n: int  # sentence pairs scored
    phoenix_cleanup: bool  # whether the PHOENIX-2014T clean-up was applied to both sides


@dataclass(frozen=True)
class TextScores:
    """Translation scores over a corpus, in percent."""

    bleu1: float  # corpus BLEU with 1-grams only
    bleu2: float  # corpus BLEU with 1..2-grams
    bleu3: float  # corpus BLEU with 1..3-grams
    bleu4: float  # corpus BLEU with 1..4-grams (the headline number)
    rouge_l: float  # mean sentence-level ROUGE-L F (beta = P / R)
    bp: float  # BLEU brevity penalty (1.0 unless the output is shorter than the references)
    hyp_len: int  # hypothesis tokens (characters for Chinese)
    ref_len: int  # reference tokens
    n: int  # sentence pairs scored
    level: str  # "word" or "char": the unit BLEU and ROUGE-L count
    signature: str  # sacrebleu's signature of the BLEU-4 computation


def _check_pairs(hyps: list[str], refs: list[str]) -> None:
    """Refuse input that cannot be scored, with a message that says what to fix."""
    if len(hyps) != len(refs):
        raise SltError(
            f"{len(hyps)} hypotheses but {len(refs)} references; "
            "give exactly one hypothesis per reference, in the same order"
        )
    if not refs:
        raise SltError("no sentences to score; give at least one hypothesis/reference pair")


def clean_phoenix_2014t(gloss: str) -> str:
    """Normalise a PHOENIX-2014T gloss sequence as the published evaluation does before WER."""
    text = gloss.strip()
    for pattern, repl in _PHOENIX_2014T_RULES:
        text = pattern.sub(repl, text)
    return " ".join(token for token, _ in groupby(text.split()))  # drop consecutive repeats


def _word_measures(hyps: list[str], refs: list[str]) -> jiwer.WordOutput:
    """jiwer's corpus alignment; an empty reference counts its hypothesis words as insertions."""
    _check_pairs(hyps, refs)
    if not any(r.split() for r in refs):
        raise SltError(
            "every reference is empty, so WER is undefined; check that the reference file "
            "holds glosses/words"
        )
    return jiwer.process_words(list(refs), list(hyps))


def word_error_rate(hyps: list[str], refs: list[str]) -> float:
    """Corpus WER in percent over space-separated tokens: 100 * (S + D + I) / reference tokens.

    A pair with an empty reference adds its hypothesis tokens as insertions;
    a corpus whose references are all empty raises `SltError`.
    """
    return 100.0 * _word_measures(hyps, refs).wer


def reference_alignment(ref: list[str], hyp: list[str]) -> tuple[int, int, int]:
    """(substitutions, deletions, insertions) of the reference's WER alignment: minimum
    weighted cost (deletion 3, insertion 3, substitution 4), traced back from the end
    preferring a match, then a substitution, then an insertion, then a deletion.

    (The reference keeps the cost table in uint8, which wraps for sequences costing
    more than 255; we do not reproduce that overflow.)"""
    c = REFERENCE_WER_COSTS
    d = [[0] * (len(hyp) + 1) for _ in range(len(ref) + 1)]
    for i in range(len(ref) + 1):
        for j in range(len(hyp) + 1):
            if i == 0 or j == 0:
                d[i][j] = j * c["ins"] if i == 0 else i * c["del"]
            elif ref[i - 1] == hyp[j - 1]:
                d[i][j] = d[i - 1][j - 1]
            else:
                d[i][j] = min(
                    d[i - 1][j - 1] + c["sub"], d[i][j - 1] + c["ins"], d[i - 1][j] + c["del"]
                )
    sub = dele = ins = 0
    i, j = len(ref), len(hyp)
    while i > 0 or j > 0:
        diagonal = i > 0 and j > 0
        if diagonal and d[i][j] == d[i - 1][j - 1] and ref[i - 1] == hyp[j - 1]:
            i, j = i - 1, j - 1
        elif diagonal and d[i][j] == d[i - 1][j - 1] + c["sub"]:
            sub, i, j = sub + 1, i - 1, j - 1
        elif j > 0 and d[i][j] == d[i][j - 1] + c["ins"]:
            ins, j = ins + 1, j - 1
        else:
            dele, i = dele + 1, i - 1
    return sub, dele, ins


def _reference_scores(hyps: list[str], refs: list[str], phoenix_cleanup: bool) -> GlossScores:
    counts = [reference_alignment(r.split(), h.split()) for h, r in zip(hyps, refs)]
    ref_len = sum(len(r.split()) for r in refs)
    if not ref_len:
        raise SltError("every reference is empty, so WER is undefined; check the reference file")
    sub, dele, ins = (sum(c[k] for c in counts) for k in range(3))
    return GlossScores(
        100.0 * (sub + dele + ins) / ref_len, sub, dele, ins, ref_len, len(refs), phoenix_cleanup
    )


def evaluate_gloss(
    hyps: list[str], refs: list[str], phoenix_cleanup: bool, wer: str = "standard"
) -> GlossScores:
    """Gloss WER with its error counts; `phoenix_cleanup` for PHOENIX-2014T (German) glosses.

    `wer="reference"`: as TwoStream-SLT scores (glosses upper-cased before the clean-up,
    the weighted alignment of `reference_alignment`)."""
    _check_pairs(hyps, refs)
    if wer not in WER_STYLES:
        raise SltError(f"--wer must be one of {WER_STYLES}, got {wer!r}")
    if wer == "reference":
        hyps, refs = [h.upper() for h in hyps], [r.upper() for r in refs]
    if phoenix_cleanup:
        hyps = [clean_phoenix_2014t(h) for h in hyps]
        refs = [clean_phoenix_2014t(r) for r in refs]
    logger.info("scored %d gloss sequences (PHOENIX clean-up: %s)", len(refs), phoenix_cleanup)
    if wer == "reference":
        return _reference_scores(hyps, refs, phoenix_cleanup)
    out = _word_measures(hyps, refs)
    return GlossScores(
        wer=100.0 * out.wer,
        sub=out.substitutions,
        dele=out.deletions,
        ins=out.insertions,
        ref_len=out.hits + out.substitutions + out.deletions,
        n=len(refs),
        phoenix_cleanup=phoenix_cleanup,
    )


def check_lang(lang: str) -> str:
    """Validate a language code (ISO 639, e.g. de, zh, vi, en; a region such as zh-CN is ignored)."""
    base = lang.strip().lower().replace("_", "-").split("-")[0]
    if not _LANG_RE.match(base):
        raise SltError(f"language {lang!r} is not an ISO 639 code; give e.g. de, zh, vi or en")
    return base


def text_tokens(text: str, lang: str) -> list[str]:
    """The units BLEU and ROUGE-L count: lowercased words, or characters for Chinese.

    Text is NFC-normalised first, so that a decomposed Vietnamese or German
    letter still matches its composed spelling.
    """
    text = unicodedata.normalize("NFC", text).lower()
    if check_lang(lang) in CHARACTER_LANGS:
        return [ch for ch in text if not ch.isspace()]
    return text.split()


def lcs_f_measure(hyp: list[str], ref: list[str]) -> float:
    """Sentence ROUGE-L F as in the reference: R = LCS/|ref|, P = LCS/|hyp|, beta = P/R.

    Two empty sequences agree (1.0); one empty sequence scores 0.0.
    """
    if not hyp and not ref:
        return 1.0
    lcs = LCSseq.similarity(hyp, ref)
    if lcs == 0:
        return 0.0
    recall, precision = lcs / len(ref), lcs / len(hyp)
    beta2 = (precision / recall) ** 2
    return (1 + beta2) * recall * precision / (recall + beta2 * precision)


def rouge_l(hyps: list[str], refs: list[str], lang: str) -> float:
    """Mean sentence-level ROUGE-L F in percent, on whitespace tokens (characters for Chinese)."""
    _check_pairs(hyps, refs)
    scores = [lcs_f_measure(text_tokens(h, lang), text_tokens(r, lang)) for h, r in zip(hyps, refs)]
    return 100.0 * sum(scores) / len(scores)


def _bleu_scorer(order: int) -> BLEU:
    """sacrebleu set up as the reference's raw corpus BLEU: no tokenizer, no smoothing."""
    return BLEU(
        lowercase=True, tokenize="none", smooth_method="none", max_ngram_order=order, force=True
    )


def evaluate_text(hyps: list[str], refs: list[str], lang: str) -> TextScores:
    """BLEU-1..4 (sacrebleu corpus BLEU) and ROUGE-L of translations against one reference each."""
    _check_pairs(hyps, refs)
    level = "char" if check_lang(lang) in CHARACTER_LANGS else "word"
    hyp_lines = [" ".join(text_tokens(h, lang)) for h in hyps]
    ref_lines = [" ".join(text_tokens(r, lang)) for r in refs]
    if not any(ref_lines):
        raise SltError("every reference is empty; check that the reference file holds the text")
    bleu = {}
    for order in BLEU_ORDERS:
        scorer = _bleu_scorer(order)
        bleu[order] = scorer.corpus_score(hyp_lines, [ref_lines])
    signature = scorer.get_signature().format()
    logger.info("scored %d sentences (%s level, lang %s): %s", len(refs), level, lang, signature)
    last = bleu[BLEU_ORDERS[-1]]
    return TextScores(
        bleu1=bleu[1].score,
        bleu2=bleu[2].score,
        bleu3=bleu[3].score,
        bleu4=bleu[4].score,
        rouge_l=rouge_l(hyp_lines, ref_lines, lang),
        bp=last.bp,
        hyp_len=last.sys_len,
        ref_len=last.ref_len,
        n=len(refs),
        level=level,
        signature=signature,
    )


# --- files: what `slt evaluate` reads ---------------------------------------------------


def default_phoenix_cleanup(task: str, lang: str | None) -> bool:
    """The PHOENIX-2014T clean-up is on by default only for German glosses."""
    return task == "gloss" and lang is not None and check_lang(lang) == "de"


def _is_jsonl(path: Path) -> bool:
    """An annotation file if named *.jsonl or if its first non-blank line is a JSON object."""
    if path.suffix == ".jsonl":
        return True
    try:
        with path.open(encoding="utf-8-sig") as f:
            first = next((line for line in f if line.strip()), "")
    except UnicodeDecodeError:
        return False  # not text at all: reading it as plain text says so
    if not first.lstrip().startswith("{"):
        return False
    try:
        return isinstance(json.loads(first), dict)
    except json.JSONDecodeError:
        return False


def _read_lines(path: Path) -> list[str]:
    """Plain text, one sentence a line (an empty line is an empty sentence)."""
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as e:
        raise SltError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _read_clips(path: Path, field: str) -> list[Clip]:
    """Annotation clips that carry `field`; a file where none does is an error."""
    clips = read_jsonl(path)
    if clips and not any(field in c.model_fields_set for c in clips):
        other = "text" if field == "gloss" else "gloss"
        raise SltError(f"{path}: no clip has a '{field}' field; did you mean --task {other}?")
    return clips


def _names(names: list[str]) -> str:
    shown = ", ".join(names[:5])
    return shown + (f" and {len(names) - 5} more" if len(names) > 5 else "")


def _match_by_name(hyp: list[Clip], ref: list[Clip], field: str) -> tuple[list[str], list[str]]:
    """Pair clips by `name`, in the reference's order; a name on one side only is an error."""
    by_name = {c.name: c for c in hyp}
    ref_names = {c.name for c in ref}
    missing = [c.name for c in ref if c.name not in by_name]
    if missing:
        raise SltError(f"no hypothesis for {len(missing)} reference clip(s): {_names(missing)}")
    extra = [c.name for c in hyp if c.name not in ref_names]
    if extra:
        raise SltError(f"{len(extra)} hypothesis clip(s) not in the reference: {_names(extra)}")
    return [getattr(by_name[c.name], field) for c in ref], [getattr(c, field) for c in ref]


def load_pairs(
    hyp_path: str | os.PathLike, ref_path: str | os.PathLike, task: str
) -> tuple[list[str], list[str]]:
    """Hypotheses and references from plain text (aligned by line) or JSONL clips (by `name`).

    With one side JSONL and the other plain text, clips are taken in file order.
    """
    field = check_task(task)
    paths = [Path(hyp_path), Path(ref_path)]
    for path in paths:
        if not path.is_file():
            raise SltError(f"{path}: file not found")
    kinds = [_is_jsonl(p) for p in paths]
    if all(kinds):
        hyp, ref = (_read_clips(p, field) for p in paths)
        return _match_by_name(hyp, ref, field)
    sides = [
        [getattr(c, field) for c in _read_clips(p, field)] if is_jsonl else _read_lines(p)
        for p, is_jsonl in zip(paths, kinds)
    ]
    if len(sides[0]) != len(sides[1]):
        raise SltError(
            f"{paths[0]} has {len(sides[0])} sentences but {paths[1]} has {len(sides[1])}; "
            "plain-text files are matched line by line, so they must have as many lines"
        )
    return sides[0], sides[1]


def check_task(task: str) -> str:
    """Validate a task name; it is also the clip field scored."""
    if task not in TASKS:
        raise SltError(f"unknown task {task!r}; choose one of: {', '.join(TASKS)}")
    return task
