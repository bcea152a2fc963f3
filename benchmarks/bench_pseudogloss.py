"""How close pseudo-glosses derived from text come to human glosses, vs plain tokenisers.

    python benchmarks/bench_pseudogloss.py

One table: on the 30 VSL-GH sentences with human glosses (Vietnamese), naive
syllables, plain underthesea / pyvi word segmentation (upper-cased, hyphen-joined)
and ours, scored as corpus WER and bag-of-glosses P/R/F1; the two halves of the
sample (odd / even sentences) are shown apart, as a check that the rules are
not fitted to one half. Then PHOENIX-2014T dev (German) and CSL-Daily dev
(Chinese) against their plain baselines, for reference.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from slt_training.data.pseudogloss import GlossOptions, compare_glosses, derive_glosses

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
VSL = DATA / "vsl-gh" / "sample.jsonl"
PHOENIX_DEV = DATA / "phoenix-2014t" / "dev.jsonl"
CSL_DEV = DATA / "csl-daily" / "dev.jsonl"
SOURCES = (
    "VSL-GH sample (nguyentheanh822/Vietnamese-Sign-Language-Translation, CC BY 4.0); "
    "RWTH-PHOENIX-Weather-2014T dev and CSL-Daily dev as in the TwoStream-SLT annotation files"
)
WORD = re.compile(r"\w+")

Deriver = Callable[[str], list[str]]


def load(path: Path) -> tuple[list[str], list[list[str]]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    return [r["text"] for r in rows], [r["gloss"].split() for r in rows]


def naive_words(text: str) -> list[str]:
    """Whitespace words (syllables for Vietnamese), punctuation dropped, upper-cased."""
    return [w.upper() for w in WORD.findall(text)]


def underthesea_words(text: str) -> list[str]:
    from underthesea import word_tokenize

    return [w.upper().replace(" ", "-") for w in word_tokenize(text) if WORD.search(w)]


def underthesea_with_punctuation(text: str) -> list[str]:
    """underthesea words as they come, punctuation tokens included (the plainest baseline)."""
    from underthesea import word_tokenize

    return [w.upper().replace(" ", "-") for w in word_tokenize(text)]


def pyvi_words(text: str) -> list[str]:
    from pyvi import ViTokenizer

    return [
        w.upper().replace("_", "-") for w in ViTokenizer.tokenize(text).split() if WORD.search(w)
    ]


def characters(text: str) -> list[str]:
    return [c for c in text if WORD.match(c)]


def ours(**kw) -> Deriver:
    options = GlossOptions(**kw)
    return lambda text: derive_glosses(text, options)


def score(derive: Deriver, texts: list[str], human: list[list[str]]) -> tuple[list[str], float]:
    derive(texts[0])  # load models outside the clock
    start = time.perf_counter()
    derived = [derive(t) for t in texts]
    ms = 1000 * (time.perf_counter() - start) / len(texts)
    cells = []
    for idx in (range(len(texts)), range(0, len(texts), 2), range(1, len(texts), 2)):
        r = compare_glosses([derived[i] for i in idx], [human[i] for i in idx])
        cells.append((r.wer, r.precision, r.recall, r.f1))
    (wer, p, rec, f1), (wer_a, *_, f1_a), (wer_b, *_, f1_b) = cells
    row = [f"{wer:.1f}", f"{p:.3f}", f"{rec:.3f}", f"{f1:.3f}"]
    return row + [f"{f1_a:.3f} / {wer_a:.1f}", f"{f1_b:.3f} / {wer_b:.1f}", f"{ms:.2f}"], f1


def rows() -> list[tuple[str, str, Deriver, Path]]:
    out = []
    if VSL.is_file():
        out += [
            ("VSL-GH sample (vi, 30)", "naive syllables", naive_words, VSL),
            ("", "underthesea words + punctuation", underthesea_with_punctuation, VSL),
            ("", "underthesea words, upper-cased", underthesea_words, VSL),
            ("", "pyvi words, upper-cased", pyvi_words, VSL),
            ("", "ours (underthesea)", ours(lang="vi", segmenter="underthesea"), VSL),
            ("", "ours (pyvi)", ours(lang="vi", segmenter="pyvi"), VSL),
            ("", "ours, --no-reorder", ours(lang="vi", reorder=False), VSL),
        ]
    if PHOENIX_DEV.is_file():
        out += [
            ("PHOENIX-2014T dev (de)", "naive whitespace words", naive_words, PHOENIX_DEV),
            ("", "ours", ours(lang="de"), PHOENIX_DEV),
        ]
    if CSL_DEV.is_file():
        out += [("CSL-Daily dev (zh)", "characters", characters, CSL_DEV)]
        try:
            import jieba  # noqa: F401

            out += [("", "ours (jieba words)", ours(lang="zh"), CSL_DEV)]
        except ImportError:
            pass
    return out


def main() -> None:
    table = Table(
        "corpus",
        "method",
        "WER %",
        "precision",
        "recall",
        "F1",
        "odd half F1 / WER",
        "even half F1 / WER",
        "ms / sentence",
        title="pseudo-glosses from text vs human glosses (bag-of-glosses F1, corpus WER)",
        caption=f"data: {SOURCES}",
    )
    cache: dict[Path, tuple[list[str], list[list[str]]]] = {}
    for corpus, method, derive, path in rows():
        texts, human = cache.setdefault(path, load(path))
        cells, _ = score(derive, texts, human)
        table.add_row(corpus, method, *cells)
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
