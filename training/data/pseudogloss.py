"""Pseudo-glosses from text, for corpora that have sentences but no gloss annotation.

Sign-to-gloss recognition (CTC) needs a gloss sequence per clip. Where a corpus
has none, we derive one from the spoken-language text the way human glossers
write them: upper-case sign names, function words without a sign dropped,
numbers digit by digit, and (Vietnamese) multi-syllable words hyphen-joined,
time first, modal/aspect/negation words at the clause end and a yes/no question
as one final sign (CÓ-KHÔNG). Language rules:

- `vi`: word segmentation + POS (underthesea, else pyvi), rules in `gloss_rules_vi`.
- `de`: PHOENIX-2014T style: lower-cased words, function words dropped, umlauts
  spelled as the PHOENIX glosses do (ä → AE, ß → SS).
- `zh`: CSL-Daily style: the unit is the word (jieba), as CSL-Daily glosses are
  words, not characters; particles dropped, Chinese numerals as digits.
- anything else: whitespace words, with the stop words of a user file.
"""

from __future__ import annotations

import logging
import os
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

from slt_serve.errors import SltError
from slt_training.data import gloss_rules_vi
from slt_training.data.annotations import Clip, read_jsonl, split_path, write_jsonl
from slt_training.data.gloss_rules_vi import parse_word_list, read_word_list

logger = logging.getLogger(__name__)

NUMBER_MODES = ("digits", "keep")
BUILTIN_STOPWORDS = {"vi": "vi_stopwords.txt", "de": "de_stopwords.txt", "zh": "zh_stopwords.txt"}
WORD = re.compile(r"\w+(?:[-'’]\w+)*")
DIGITS = re.compile(r"^\d+(?:[.,]\d+)*$")
DE_ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})
ZH_DIGITS = {c: str(i) for i, c in enumerate("零一二三四五六七八九")} | {"两": "2"}
PSEUDO_SOURCE = "pseudo"  # `gloss_source` value prefix of derived glosses: "pseudo:vi"


@dataclass(frozen=True)
class GlossOptions:
    """How to derive glosses from text; defaults are the human-gloss conventions."""

    lang: str = "vi"  # ISO 639-1 code: vi, de, zh have rules; any other: whitespace words
    normalise: bool = True  # Unicode NFC (decomposed Vietnamese input) and single spaces
    lowercase: bool = True  # case-fold the text before the rules (glosses are upper-cased)
    strip_punctuation: bool = True  # punctuation is no sign
    builtin_stopwords: bool = True  # drop the language's built-in function words
    stopwords_file: Path | None = None  # extra words to drop, one a line ('#' comments)
    lemmas_file: Path | None = None  # "word<TAB>lemma" lines, replaced before the rules
    numbers: str = "digits"  # "digits": 24 → 2 4 (signed digit by digit); "keep": 24
    segmenter: str = (
        "auto"  # vi word segmentation: auto (underthesea, else pyvi), underthesea, pyvi
    )
    hyphenate: bool = True  # a multi-syllable word is one hyphen-joined gloss (ĐĂNG-KÝ)
    reorder: bool = True  # sign-language word order (vi: modals/aspect/negation to clause end)
    uppercase: bool = True  # glosses in capitals, as glossers write them

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z]{2,3}", self.lang):
            raise SltError(f"language {self.lang!r}: give an ISO 639 code such as vi, de, zh, en")
        if self.numbers not in NUMBER_MODES:
            raise SltError(f"numbers={self.numbers!r}: choose from {', '.join(NUMBER_MODES)}")
        if self.segmenter not in gloss_rules_vi.SEGMENTERS:
            choices = ", ".join(gloss_rules_vi.SEGMENTERS)
            raise SltError(f"segmenter={self.segmenter!r}: choose from {choices}")
        for what in ("stopwords_file", "lemmas_file"):
            path = getattr(self, what)
            if path is not None and not Path(path).is_file():
                raise SltError(f"{what.replace('_', ' ')} {path}: not found")


@dataclass(frozen=True)
class GlossRules:
    """What the options load from disk, once per options value."""

    stopwords: frozenset[str]
    lemmas: tuple[tuple[re.Pattern[str], str], ...]  # longest word first
    vi: gloss_rules_vi.VietnameseLists | None = None


def normalise_text(text: str, options: GlossOptions) -> str:
    """NFC (so decomposed and precomposed Vietnamese agree), single spaces, optionally lower."""
    if options.normalise:
        text = " ".join(unicodedata.normalize("NFC", text).split())
    return text.lower() if options.lowercase else text


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise SltError(f"{path}: cannot read it as UTF-8 text ({e})") from None


def read_lemmas(path: Path) -> dict[str, str]:
    """A "word<TAB>lemma" file → {word: lemma}; a malformed line is named."""
    lemmas: dict[str, str] = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        parts = line.split("\t")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise SltError(f"{path}:{lineno}: expected 'word<TAB>lemma', got {line!r}")
        lemmas[parts[0].strip()] = parts[1].strip()
    return lemmas


def _lemma_patterns(lemmas: dict[str, str], options: GlossOptions) -> tuple:
    """Whole-word patterns, longest first, on the normalised text (substrings for zh)."""
    out = []
    for word in sorted(lemmas, key=len, reverse=True):
        key = normalise_text(word, options)
        lemma = normalise_text(lemmas[word], options)
        pattern = re.escape(key) if options.lang == "zh" else rf"(?<!\w){re.escape(key)}(?!\w)"
        out.append((re.compile(pattern), lemma))
    return tuple(out)


@lru_cache(maxsize=16)
def load_rules(options: GlossOptions) -> GlossRules:
    """Built-in lists and the user's files, merged and normalised like the text."""
    words: list[str] = []
    if options.builtin_stopwords and options.lang in BUILTIN_STOPWORDS:
        words.extend(read_word_list(BUILTIN_STOPWORDS[options.lang]))
    if options.stopwords_file is not None:
        words.extend(parse_word_list(_read_lines(options.stopwords_file)))
    stop = frozenset(normalise_text(w.replace("-", " "), options) for w in words)
    lemmas = read_lemmas(options.lemmas_file) if options.lemmas_file else {}
    vi = None
    if options.lang == "vi":
        builtin = gloss_rules_vi.builtin_lists()
        vi = replace(builtin, stopwords=stop)
    return GlossRules(stopwords=stop, lemmas=_lemma_patterns(lemmas, options), vi=vi)


# ── text → glosses ───────────────────────────────────────────────────────────


def derive_glosses(text: str, options: GlossOptions = GlossOptions()) -> list[str]:
    """One sentence → its pseudo-gloss sequence (empty for text with no signable word)."""
    rules = load_rules(options)
    text = normalise_text(text, options)
    for pattern, lemma in rules.lemmas:
        text = pattern.sub(lemma, text)
    if options.lang == "vi":
        words = _vietnamese(text, rules, options)
    elif options.lang == "zh":
        words = _chinese(text, rules, options)
    else:
        words = [w for w in _words(text, options) if w not in rules.stopwords]
        if options.lang == "de":
            words = [w.translate(DE_ASCII) for w in words]
    if options.numbers == "digits":
        words = [d for w in words for d in _digits(w)]
    return [w.upper() for w in words] if options.uppercase else words


def _words(text: str, options: GlossOptions) -> list[str]:
    return WORD.findall(text) if options.strip_punctuation else text.split()


def _digits(word: str) -> list[str]:
    """24 → 2 4 (separators of 1.000 dropped); anything else unchanged."""
    return [c for c in word if c.isdigit()] if DIGITS.match(word) else [word]


def _vietnamese(text: str, rules: GlossRules, options: GlossOptions) -> list[str]:
    assert rules.vi is not None
    return gloss_rules_vi.derive(
        text,
        rules.vi,
        options.segmenter,
        reorder_words=options.reorder,
        hyphenate=options.hyphenate,
        digits=options.numbers == "digits",
        keep_punctuation=not options.strip_punctuation,
    )


@lru_cache(maxsize=1)
def _jieba():
    try:
        import jieba
    except ImportError:
        raise SltError(
            "Chinese glosses are words, which needs the jieba segmenter; run `pip install jieba`"
        ) from None
    jieba.setLogLevel(logging.WARNING)
    return jieba


def _chinese(text: str, rules: GlossRules, options: GlossOptions) -> list[str]:
    """Dictionary words (jieba), particles dropped, all-numeral words as digits (四 → 4)."""
    out = []
    for w in _jieba().lcut(text, HMM=False):  # dictionary words only: closer to CSL glosses
        w = w.strip()
        if not w or w in rules.stopwords:
            continue
        if options.strip_punctuation and not WORD.search(w):
            continue
        if options.numbers == "digits" and all(c in ZH_DIGITS for c in w):
            out.extend(ZH_DIGITS[c] for c in w)
        else:
            out.append(w)
    return out


# ── comparison with human glosses ────────────────────────────────────────────


@dataclass(frozen=True)
class GlossComparison:
    """Derived vs human glosses over a corpus."""

    wer: float  # corpus WER in percent over gloss tokens (order matters)
    precision: float  # bag-of-glosses: matched / derived tokens, micro-averaged
    recall: float  # matched / human tokens
    f1: float  # harmonic mean of precision and recall
    n_sentences: int


def compare_glosses(derived: list[list[str]], human: list[list[str]]) -> GlossComparison:
    """Corpus WER and multiset (Counter intersection) precision/recall/F1 per sentence, summed."""
    from slt_training.metrics import word_error_rate

    wer = word_error_rate([" ".join(d) for d in derived], [" ".join(h) for h in human])
    matched = sum(sum((Counter(d) & Counter(h)).values()) for d, h in zip(derived, human))
    n_derived = sum(len(d) for d in derived)
    n_human = sum(len(h) for h in human)
    precision = matched / n_derived if n_derived else 0.0
    recall = matched / n_human if n_human else 0.0
    f1 = 2 * precision * recall / (precision + recall) if matched else 0.0
    return GlossComparison(wer, precision, recall, f1, len(human))


@dataclass(frozen=True)
class GlossExample:
    """One clip shown side by side."""

    name: str
    text: str
    human: str
    derived: str


def human_gloss(clip: Clip) -> str:
    """The clip's human gloss: kept aside in `gloss_human`, or `gloss` if it was not derived."""
    kept = (clip.model_extra or {}).get("gloss_human")
    if isinstance(kept, str) and kept.strip():
        return " ".join(kept.split())
    source = (clip.model_extra or {}).get("gloss_source", "")
    return "" if str(source).startswith(PSEUDO_SOURCE) else clip.gloss


def compare_clips(
    clips: Iterable[Clip], options: GlossOptions
) -> tuple[GlossComparison, list[GlossExample]]:
    """Derive glosses for the clips that have a human gloss and score them against it."""
    examples = [
        GlossExample(c.name, c.text, human_gloss(c), " ".join(derive_glosses(c.text, options)))
        for c in clips
        if human_gloss(c)
    ]
    if not examples:
        raise SltError("no clip has a human gloss to compare with; --compare needs some")
    result = compare_glosses(
        [e.derived.split() for e in examples], [e.human.split() for e in examples]
    )
    return result, examples


# ── the dataset operation ────────────────────────────────────────────────────


@dataclass(frozen=True)
class GlossFromTextResult:
    """What `gloss_from_text` wrote."""

    files: tuple[Path, ...]  # annotation files rewritten
    clips: int  # clips given a derived gloss
    human_kept: int  # human glosses moved to `gloss_human`
    no_text: int  # clips with no text (left with an empty gloss)
    vocabulary: int  # distinct derived glosses
    per_file: dict[str, int] = field(default_factory=dict)  # file name → clips


def annotation_files(dataset: str | os.PathLike, splits: Iterable[str]) -> list[Path]:
    """A single .jsonl file as it is, or the split files of a dataset root (each must exist)."""
    dataset = Path(dataset)
    if dataset.is_file():
        if dataset.suffix != ".jsonl":
            raise SltError(f"{dataset}: expected a dataset folder or a .jsonl annotation file")
        return [dataset]
    if not dataset.is_dir():
        raise SltError(f"{dataset}: no such dataset folder or .jsonl file")
    files = [split_path(dataset, s) for s in splits]
    missing = [f.name for f in files if not f.is_file()]
    if missing or not files:
        raise SltError(
            f"{dataset}: missing {', '.join(missing) or 'split files'}; "
            "choose the splits that exist with --splits, or import annotations first"
        )
    return files


def has_human_gloss(clip: Clip) -> bool:
    source = str((clip.model_extra or {}).get("gloss_source", ""))
    return bool(clip.gloss) and not source.startswith(PSEUDO_SOURCE)


def _with_derived(clip: Clip, options: GlossOptions) -> Clip:
    """The clip with a derived gloss; a human gloss is kept in `gloss_human`."""
    data = clip.model_dump()
    if has_human_gloss(clip) and not data.get("gloss_human"):
        data["gloss_human"] = clip.gloss
    data["gloss"] = " ".join(derive_glosses(clip.text, options)) if clip.text.strip() else ""
    data["gloss_source"] = f"{PSEUDO_SOURCE}:{options.lang}"
    return Clip.model_validate(data)


def gloss_from_text(
    dataset: str | os.PathLike,
    splits: Iterable[str],
    options: GlossOptions = GlossOptions(),
    overwrite: bool = False,
) -> GlossFromTextResult:
    """Fill `gloss` of every clip from its `text`, rewriting each split file atomically.

    Refuses to replace human glosses unless `overwrite`; even then the human
    gloss stays in `gloss_human`, so it can still be compared with.
    """
    files = annotation_files(dataset, splits)
    loaded = {f: read_jsonl(f) for f in files}
    human = [(f, c.name) for f, clips in loaded.items() for c in clips if has_human_gloss(c)]
    if human and not overwrite:
        f, name = human[0]
        raise SltError(
            f"{len(human)} clip(s) already have a human gloss (first: {f.name} '{name}'); "
            "score against them with --compare, or replace them with --overwrite "
            "(the human gloss is kept in 'gloss_human')"
        )
    per_file, vocab, no_text = {}, set(), 0
    for f, clips in loaded.items():
        derived = [_with_derived(c, options) for c in clips]
        write_jsonl(f, derived)
        per_file[f.name] = len(derived)
        vocab.update(g for c in derived for g in c.glosses)
        no_text += sum(1 for c in clips if not c.text.strip())
        logger.debug("%s: %d clips glossed from text", f, len(derived))
    if no_text:
        logger.warning("%d clip(s) have no text and were left with an empty gloss", no_text)
    return GlossFromTextResult(
        tuple(files), sum(per_file.values()), len(human), no_text, len(vocab), per_file
    )


def compare_dataset(
    dataset: str | os.PathLike, splits: Iterable[str], options: GlossOptions = GlossOptions()
) -> tuple[GlossComparison, list[GlossExample]]:
    """Score derived glosses against the human ones of a dataset or .jsonl file; writes nothing."""
    clips = [c for f in annotation_files(dataset, splits) for c in read_jsonl(f)]
    return compare_clips(clips, options)
