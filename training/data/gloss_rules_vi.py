"""Vietnamese text → Vietnamese Sign Language (VSL) pseudo-glosses.

Human VSL glossers write one gloss per sign: a word (one or two syllables,
hyphen-joined: ĐĂNG-KÝ), never a function word that has no sign (copula `là`,
possessive `của`, tense markers `đã`/`sẽ`, final particles `ạ`/`nhé`,
classifiers `đứa`/`cái`), numbers digit by digit, and a word order of their
own: modal, aspect and negation words close the clause (TÔI KHÁM MUỐN), a
numeral follows its noun (TUỔI 2 4), a possessor comes first (TÔI
ĐIỆN-THOẠI), a time phrase comes before the verb (TÔI GIỜ 9 SÁNG HẸN), and a
yes/no question ends in one question sign (BẠN MANG THẺ CÓ-KHÔNG). These are
general rules of Vietnamese and VSL grammar applied to the tagged words, in
the order of `derive`; the closed word classes they use (function words,
modals, question words and frames, pronouns, time words) live in
`resources/` as plain text. docs/pseudo-glosses.md has the rules, the
protocol they were measured with and the figures.

Tags are the VLSP-2013 set that both underthesea and pyvi produce:
N noun, Nc classifier, V verb, A adjective, P pronoun, R adverb, M numeral,
E preposition, C conjunction, T particle, I interjection, L determiner. The
rules add their own: X a fixed expression (ở đâu), Q a yes/no question sign
(CÓ-KHÔNG), WH a wh-word fused with its noun (TẦNG-MẤY).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import lru_cache
from importlib import resources

from slt_serve.errors import SltError

logger = logging.getLogger(__name__)

SEGMENTERS = ("auto", "underthesea", "pyvi")
INSTALL_HINT = "pip install 'slt-serve[vi]'"

# Tags of words that VSL glossers do not sign: particles, interjections,
# classifiers (before their noun), punctuation (CH, F in pyvi). Determiners (L)
# are signed when they quantify (mỗi, mọi, vài); the plural markers những, các
# are function words in the stop list.
UNSIGNED_TAGS = frozenset({"T", "I", "Nc", "CH", "F"})
CLASSIFIED_TAGS = frozenset({"N", "Np", "Nu", "Ny", "V", "A"})  # what a classifier precedes
# Tags that close a clause for the word-order rules: punctuation, conjunctions.
CLAUSE_BREAK_TAGS = frozenset({"CH", "F", "C", "CC"})
CLAUSE_BREAK_WORDS = frozenset({"để", "vì", "nếu", "khi", "nhưng", "và", "hoặc", "rồi thì"})
SUBORDINATORS = frozenset({"để", "khi"})  # purpose and time clauses, inside a question's frame
PUNCT_WORD = re.compile(r"^[^\w]+$")
NUMBER = re.compile(r"^\d+([.,/]\d+)*$")  # 1.000, 2,5 and dates 12/5/1990: digits
CLOCK_TIME = re.compile(r"\b(\d{1,2})h(\d{2})?\b")  # 8h, 8h30: 8 giờ (30)
NEGATIONS = frozenset({"không", "chưa", "không thể", "chưa thể"})
TIME_RELATIONS = frozenset({"từ", "đến", "tới", "sau", "trước", "khoảng", "trong"})
NOUN_TAGS = frozenset({"N", "Np", "Nu", "Ny"})
VERB_TAGS = frozenset({"V", "A"})


@dataclass(frozen=True)
class Word:
    """One segmented word: lower-case syllables joined by single spaces, and its POS tag."""

    text: str
    tag: str

    @property
    def syllables(self) -> list[str]:
        return self.text.split()


def read_word_list(name: str) -> frozenset[str]:
    """A built-in list from `resources/`: one entry a line, `#` starts a comment."""
    text = resources.files("slt_training.data").joinpath("resources", name).read_text("utf-8")
    return frozenset(parse_word_list(text.splitlines()))


def parse_word_list(lines: Iterable[str]) -> list[str]:
    """Entries of a word-list file: comments and blank lines dropped, spaces single."""
    out = []
    for line in lines:
        entry = " ".join(line.split("#", 1)[0].split()).lower()
        if entry:
            out.append(entry)
    return out


# ── segmentation and tagging ─────────────────────────────────────────────────


@lru_cache(maxsize=4)
def tagger(segmenter: str) -> tuple[Callable[[str], list[tuple[str, str]]], frozenset[str]]:
    """(text → [(word, tag)], lexicon of multi-syllable words) for a backend, imported lazily."""
    if segmenter not in SEGMENTERS:
        raise SltError(f"unknown Vietnamese segmenter {segmenter!r}: choose from {SEGMENTERS}")
    order = ("underthesea", "pyvi") if segmenter == "auto" else (segmenter,)
    for name in order:
        try:
            return _load_backend(name)
        except ImportError:
            logger.info("Vietnamese segmenter %s is not installed", name)
    which = "underthesea or pyvi" if segmenter == "auto" else segmenter
    raise SltError(
        f"Vietnamese word segmentation needs {which}, which is not installed; run `{INSTALL_HINT}`"
    )


def _load_backend(name: str) -> tuple[Callable[[str], list[tuple[str, str]]], frozenset[str]]:
    if name == "underthesea":
        from underthesea import pos_tag
        from underthesea.corpus import viet_dict_74K

        lexicon = spelling_variants(w.lower() for w in viet_dict_74K.words if " " in w)
        return pos_tag, lexicon
    from pyvi import ViPosTagger, ViTokenizer

    words_file = resources.files("pyvi").joinpath("models", "words.txt")
    lines = words_file.read_text("utf-8").splitlines()
    lexicon = spelling_variants(w.strip().lower() for w in lines if " " in w.strip())

    def pyvi_tag(text: str) -> list[tuple[str, str]]:
        words, tags = ViPosTagger.postagging(ViTokenizer.tokenize(text))
        return [(w.replace("_", " "), str(t)) for w, t in zip(words, tags)]

    return pyvi_tag, lexicon


TONE_MARKS = "\u0300\u0301\u0303\u0309\u0323"  # huyền, sắc, ngã, hỏi, nặng (decomposed)
# An open syllable in oa/oe/uy takes its tone on either vowel: hòa/hoà, khỏe/khoẻ, thúy/thuý.
END = r"(?![^\W\d_])"  # no letter follows: the syllable is open
TONE_ON_FIRST = re.compile(rf"(?<!q)(?:(o)([{TONE_MARKS}])([ae])|(u)([{TONE_MARKS}])(y)){END}")
TONE_ON_SECOND = re.compile(rf"(?<!q)(?:(o)([ae])([{TONE_MARKS}])|(u)(y)([{TONE_MARKS}])){END}")


def _swap(m: re.Match[str]) -> str:
    a, b, c = m.group(1, 2, 3) if m.group(1) else m.group(4, 5, 6)
    return a + c + b


def spelling_variants(words: Iterable[str]) -> frozenset[str]:
    """Words in both tone-mark placements (sức khỏe and sức khoẻ).

    Vietnamese has two accepted placements of the tone mark in open oa/oe/uy
    syllables, and a dictionary uses one: a text in the other would miss every
    such compound (pyvi's dictionary has only `sức khoẻ`). Looking words up in a
    dictionary holding both answers for either spelling; glosses keep the text's.
    """
    out = set()
    for w in words:
        nfd = unicodedata.normalize("NFD", w)
        out.add(w)
        for pattern in (TONE_ON_FIRST, TONE_ON_SECOND):
            out.add(unicodedata.normalize("NFC", pattern.sub(_swap, nfd)))
    return frozenset(out)


def spell_clock_times(text: str) -> str:
    """Written clock times as the words they are read as: 8h30 → 8 giờ 30, 8h → 8 giờ.

    Vietnamese writes the hour with an `h` glued to the digits; it is read
    (and signed) as `giờ` 'o'clock', which the time-first rule then finds.
    """
    return CLOCK_TIME.sub(lambda m: f"{m[1]} giờ {m[2] or ''}".rstrip(), text)


def tag_words(text: str, segmenter: str) -> tuple[list[Word], frozenset[str]]:
    """Segment and tag lower-cased text; also return the backend's lexicon."""
    tag, lexicon = tagger(segmenter)
    words = [Word(" ".join(w.lower().split()), t) for w, t in tag(text) if w.strip()]
    return [w if not PUNCT_WORD.match(w.text) else replace(w, tag="CH") for w in words], lexicon


# ── compounds ────────────────────────────────────────────────────────────────


def join_phrases(words: list[Word], phrases: frozenset[str]) -> list[Word]:
    """Join fixed multi-word expressions (ở đâu, phải không) into one word, longest first."""
    longest = max((len(p.split()) for p in phrases), default=0)
    out: list[Word] = []
    i = 0
    while i < len(words):
        for n in range(min(longest, len(words) - i), 1, -1):
            text = " ".join(w.text for w in words[i : i + n])
            if text in phrases:
                out.append(Word(text, "X"))
                i += n
                break
        else:
            out.append(words[i])
            i += 1
    return out


def split_compounds(words: list[Word], lexicon: frozenset[str]) -> list[Word]:
    """Split a segmenter unit into dictionary words of one or two syllables.

    A sign carries a one- or two-syllable word, and glossers hyphen-join only
    real words (SỨC-KHỎE). The segmenter's longer units are phrases (bảo hiểm
    y tế → BẢO-HIỂM Y-TẾ), and it also glues neighbours that form no word at
    all (khám gói → KHÁM GÓI): a unit that is not in its own dictionary is split
    too, left to right, taking a two-syllable dictionary word where there is
    one. Proper names (Np) and the fixed expressions joined before (X) stay whole.
    """
    out: list[Word] = []
    for w in words:
        syl = w.syllables
        if len(syl) < 2 or w.tag in ("Np", "X") or (len(syl) == 2 and w.text in lexicon):
            out.append(w)
            continue
        i = 0
        while i < len(syl):
            pair = " ".join(syl[i : i + 2])
            step = 2 if i + 1 < len(syl) and pair in lexicon else 1
            out.append(Word(" ".join(syl[i : i + step]), w.tag))
            i += step
    return out


def merge_noun_compounds(
    words: list[Word], lexicon: frozenset[str], closed: frozenset[str]
) -> list[Word]:
    """Join a one-syllable noun and the next content syllable when they form a lexicon word.

    Segmenters leave some compound nouns split (sức | khỏe), and tag the first
    syllable of a lexicalised classifier compound as a classifier (con | gái,
    tờ | khai): a classifier that makes a dictionary word with the next
    syllable is part of that word (CON-GÁI, TỜ-KHAI), not a classifier, which
    the dictionary never lists with its noun (con mèo is not a word). Verb +
    verb stays apart, as that is more often two signs (a serial verb).
    `closed` holds function/modal words and pronouns that never join.
    """
    out: list[Word] = []
    for w in words:
        last = out[-1] if out else None
        if (
            last is not None
            and last.tag in ("N", "Nc")
            and w.tag in ("N", "V", "A")
            and len(last.syllables) == 1
            and len(w.syllables) == 1
            and last.text not in closed
            and w.text not in closed
            and f"{last.text} {w.text}" in lexicon
        ):
            out[-1] = Word(f"{last.text} {w.text}", "N")
        else:
            out.append(w)
    return out


def merge_verb_time_compounds(
    words: list[Word], lexicon: frozenset[str], times: frozenset[str]
) -> list[Word]:
    """A time word that makes a dictionary word with the verb before it is part of that verb.

    Vietnamese names meals and rests by the time of day (ăn sáng 'have
    breakfast', ngủ trưa 'nap'): that is one verb and one sign (ĂN-SÁNG), not
    a time frame to sign first (Tôi chưa ăn sáng is not 'this morning, I have
    not eaten'). Only what the segmenter's dictionary lists is joined.
    """
    out: list[Word] = []
    for w in words:
        last = out[-1] if out else None
        if (
            last is not None
            and last.tag == "V"
            and len(last.syllables) == 1
            and w.text in times
            and f"{last.text} {w.text}" in lexicon
        ):
            out[-1] = Word(f"{last.text} {w.text}", "V")
        else:
            out.append(w)
    return out


def join_time_expressions(words: list[Word], times: frozenset[str]) -> list[Word]:
    """A multi-word time expression is one time word: tuần | trước → TUẦN-TRƯỚC.

    Deictic time expressions (tuần trước 'last week', sáng mai 'tomorrow
    morning', năm ngoái 'last year') name one point in time and are signed as
    one time sign; segmenters split many of them, and `trước`/`sau` alone
    would read as 'before/after' (a relation, not a time point). Joined, the
    expression is found by the time-first rule like hôm nay.
    """
    return join_phrases(words, frozenset(t for t in times if " " in t))


def fuse_ordinal_questions(words: list[Word], closed: frozenset[str]) -> list[Word]:
    """A noun + post-nominal `mấy` ('which number') is one question sign: tầng mấy → TẦNG-MẤY.

    Before a noun `mấy` asks 'how many' (mấy người); after it, it asks which
    one of a numbered series (số mấy, phòng mấy, tầng mấy, thứ mấy). VSL signs
    the numbered thing and the question together, as glossers write SỐ-MẤY;
    the fused sign is a wh-word and closes its clause.
    """
    out: list[Word] = []
    for i, w in enumerate(words):
        last = out[-1] if out else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        if (
            w.text == "mấy"
            and last is not None
            and last.tag in (*NOUN_TAGS, "Nc")
            and last.text not in closed
            and (nxt is None or nxt.tag not in NOUN_TAGS)
        ):
            out[-1] = Word(f"{last.text} mấy", "WH")
        else:
            out.append(w)
    return out


# ── signs that are not there ─────────────────────────────────────────────────


def drop_unsigned(words: list[Word], lists: VietnameseLists) -> list[Word]:
    """Drop function words (list and tags) and complements that share their verb's sign.

    Tags name word classes with no sign of their own (particles, classifiers,
    plural determiners), but a class is not the word: address terms that are
    pronouns (anh, chị, em, cô, chú: tagged Nc, classifier) are signed, and so
    are question words. A classifier is dropped only where it classifies, i.e.
    before a noun (or the verb/adjective it makes one of: con chó, cái đẹp);
    elsewhere it is the noun itself (những người này → NGƯỜI NÀY).
    A vocative (chị ơi, bác ơi: the address term and `ơi`) is a call for
    attention, a tap or a wave, not a sign of the sentence.
    `có` before a verb is emphatic (Tôi có đặt lịch → ĐẶT LỊCH); `theo` and
    `được` right after a verb are direction/result complements (mang theo → MANG,
    nhận được → NHẬN). A sentence-final `đi` after a verb is the imperative
    particle (Bạn ngồi đi → BẠN NGỒI), not 'go'. Punctuation is kept here: it
    still marks clause ends.
    """
    out: list[Word] = []
    for i, w in enumerate(words):
        prev = words[i - 1] if i else None
        nxt = words[i + 1] if i + 1 < len(words) else None
        if (
            nxt is not None
            and nxt.text == "ơi"
            and (w.text in lists.pronouns or w.tag in NOUN_TAGS)
        ):
            continue
        if w.tag in ("CH", "Q") or w.text in lists.pronouns or w.text in lists.questions:
            out.append(w)
        elif w.text in lists.stopwords:
            continue
        elif w.tag == "Nc" and (nxt is None or nxt.tag not in CLASSIFIED_TAGS):
            out.append(w)
        elif w.tag in UNSIGNED_TAGS:
            continue
        elif w.text == "có" and nxt is not None and nxt.tag == "V":
            continue
        elif w.text in ("theo", "được") and prev is not None and prev.tag == "V":
            continue
        elif w.text == "đi" and _imperative_particle(prev, nxt, lists.modals):
            continue
        else:
            out.append(w)
    return out


def _imperative_particle(prev: Word | None, nxt: Word | None, modals: frozenset[str]) -> bool:
    """`đi` closing a sentence right after a verb that is not a modal (muốn đi: 'go')."""
    final = nxt is None or nxt.tag == "CH"
    return final and prev is not None and prev.tag == "V" and prev.text not in modals


# ── questions ────────────────────────────────────────────────────────────────


def yes_no_questions(words: list[Word], lists: VietnameseLists) -> list[Word]:
    """A `(có|cần|phải|muốn…) … không?` question ends in one question sign: CÓ-KHÔNG.

    Vietnamese asks yes/no with a frame around the predicate: a frame word
    before it (có, or a modal: cần, phải, muốn, nên) and `không` at the end
    (`chưa` for "yet"). VSL signs the frame once, at the end, as a single sign
    named after its first word: Bạn có mang thẻ không? → BẠN MANG THẺ CÓ-KHÔNG,
    Bạn cần giúp không? → BẠN GIÚP CẦN-KHÔNG. With no frame word (Bạn khỏe
    không?) the `có` is elided and the sign is still CÓ-KHÔNG; an emphatic `có`
    before a modal frame (có cần … không) goes with it. Inside such a question
    a wh-word is indefinite, 'any' (Bạn có dị ứng thuốc gì không? 'any
    medicine'), and has no sign of its own: `gì`, `nào` are dropped.
    `không` is the question particle only at the end of its sentence (before
    final particles, then `?`, `.` or the end), and with no frame word only
    before `?` (Tôi nghĩ là không. 'I think not'): elsewhere it is negation.
    """
    out = list(words)
    k = len(out)
    while k > 0:
        k -= 1
        w = out[k]
        end = _sentence_end(out, k)
        if w.text not in ("không", "chưa") or w.tag == "M" or end is None:
            continue
        start = _question_start(out, k, lists)
        body = out[start:k]
        frames = _frame_words(body, lists.question_frames)
        if w.text == "không" and not frames and end != "?":
            continue  # Tôi nghĩ là không. — a statement's "no"
        if w.text == "không":
            frame = body[frames[-1]].text if frames else "có"
            drop = {frames[-1]} if frames else set()
            if frames and frames[-1] > 0 and body[frames[-1] - 1].text == "có":
                drop.add(frames[-1] - 1)
            body = [x for i, x in enumerate(body) if i not in drop]
            w = Word(f"{frame} không", "Q")
        body = [x for x in body if x.text not in lists.indefinites]
        out[start : k + 1] = [*body, w]
        k = start
    return out


def _question_start(words: list[Word], k: int, lists: VietnameseLists) -> int:
    """Where the yes/no question closed by `words[k]` begins.

    Its clause, or, when the frame word is not in it, the main clause before
    a subordinate clause of purpose or time (để 'in order to', khi 'when',
    trước khi 'before'): the frame scopes over the whole sentence, and the
    subordinate clause sits inside it (Tôi có phải đợi lâu để lấy kết quả
    không? → … ĐỂ LẤY KẾT-QUẢ PHẢI-KHÔNG).
    """
    start = _clause_start(words, k, lists.stopwords)
    wider = start
    while wider > 0 and words[wider - 1].text in SUBORDINATORS:
        wider = _clause_start(words, wider - 1, lists.stopwords)
        if _frame_words(words[wider:k], lists.question_frames):
            return wider
    return start


def _clause_start(words: list[Word], k: int, stopwords: frozenset[str]) -> int:
    """The first word after the clause break before `words[k]` (0 if none)."""
    start = k
    while start > 0 and not _clause_break(words[start - 1], stopwords):
        start -= 1
    return start


def _frame_words(body: list[Word], frames: frozenset[str]) -> list[int]:
    """Positions of the yes/no frame words of a question body.

    `được` frames a question only before a verb, where it is the permission
    modal (Tôi có được vào không? 'may I go in?' → TÔI VÀO ĐƯỢC-KHÔNG); after
    a verb it is a result complement (nhận được 'receive') and no frame.
    """
    out = []
    for i, x in enumerate(body):
        nxt = body[i + 1] if i + 1 < len(body) else None
        if x.text not in frames:
            continue
        if x.text == "được" and (nxt is None or nxt.tag != "V"):
            continue
        out.append(i)
    return out


def alternative_questions(words: list[Word]) -> list[Word]:
    """`… hay không?` / `… hay chưa?` ('… or not?') is the yes/no question itself.

    Vietnamese can ask yes/no as a choice between the predicate and its
    negation: Bạn có bảo hiểm hay không? is Bạn có bảo hiểm không?, signed
    with one question sign at the end (CÓ-KHÔNG). The `hay`/`hoặc` 'or' there
    links no clause and has no sign: it is dropped before the final
    `không`/`chưa`, which the yes/no rule then reads as the question particle.
    """
    out: list[Word] = []
    for i, w in enumerate(words):
        nxt = words[i + 1] if i + 1 < len(words) else None
        alternative = nxt is not None and nxt.text in ("không", "chưa")
        if w.text in ("hay", "hoặc") and alternative and _sentence_end(words, i + 1) is not None:
            continue
        out.append(w)
    return out


def ability_in_tag_questions(words: list[Word], stopwords: frozenset[str]) -> list[Word]:
    """`có thể … được không?` asks 'can …?' once: the question sign ĐƯỢC-KHÔNG carries it.

    Vietnamese frames an ability or permission question twice, with the modal
    `có thể` before the verb and the tag `được không` after it (Tôi có thể vào
    được không?). VSL signs the question once, at the end: TÔI VÀO
    ĐƯỢC-KHÔNG, so a `có thể` in the clause of a `được không` has no sign.
    """
    drop: set[int] = set()
    for k, w in enumerate(words):
        i = k - 1
        while w.text == "được không" and i >= 0 and not _clause_break(words[i], stopwords):
            if words[i].text == "có thể":
                drop.add(i)
            i -= 1
    return [w for i, w in enumerate(words) if i not in drop]


def _clause_break(w: Word, stopwords: frozenset[str]) -> bool:
    """Punctuation or a linking word; the copula `là` (tagged C at times) links no clause."""
    if w.tag == "CH" or w.text in CLAUSE_BREAK_WORDS:
        return True
    return w.tag in CLAUSE_BREAK_TAGS and w.text not in stopwords


def _sentence_end(words: list[Word], k: int) -> str | None:
    """How the sentence of `words[k]` ends ("?", "." or "" for no mark) if only final
    particles (ạ, nhé) come between; None if `words[k]` is not sentence-final."""
    for w in words[k + 1 :]:
        if w.tag == "CH":
            return w.text[0] if w.text.startswith(("?", ".")) else None
        if w.tag not in ("T", "I"):
            return None
    return ""


# ── word order ───────────────────────────────────────────────────────────────


def clauses(words: list[Word]) -> list[list[Word]]:
    """Split at punctuation and clause-linking words; the break word opens the next clause.

    `trước khi` 'before' and `sau khi` 'after' link clauses as one word: the
    clause opens at trước/sau, which belongs to what follows, not to the end
    of the clause before (Bạn cần thanh toán trước khi khám → … CẦN TRƯỚC KHI
    KHÁM, the modal closing its own clause).
    """
    out: list[list[Word]] = [[]]
    for w in words:
        if w.tag in CLAUSE_BREAK_TAGS or w.text in CLAUSE_BREAK_WORDS:
            opener: list[Word] = []
            if w.text == "khi" and out[-1] and out[-1][-1].text in ("trước", "sau"):
                opener = [out[-1].pop()]
            out.append(opener)
        out[-1].append(w)
    return [c for c in out if c]


def numerals_after_nouns(clause: list[Word]) -> list[Word]:
    """A numeral follows the noun it counts in VSL: 24 tuổi → TUỔI 2 4, 2 đứa con → CON 2.

    The minutes of a clock time (8 giờ 30 sáng) count nothing after them: a
    number right after `giờ` stays with it (GIỜ 8 3 0 SÁNG).
    """
    out = list(clause)
    i = 0
    while i < len(out):
        j = i
        while j < len(out) and out[j].tag == "M":
            j += 1
        minutes = i > 0 and clause[i - 1].text == "giờ"  # in the text's order: 8 giờ | 30
        if j > i and j < len(out) and out[j].tag in NOUN_TAGS and not minutes:
            out[i : j + 1] = [out[j], *out[i:j]]
            i = j + 1
        else:
            i = max(j, i + 1)
    return out


def possessor_first(
    clause: list[Word], pronouns: frozenset[str], times: frozenset[str] = frozenset()
) -> list[Word]:
    """A clause-initial possessed noun yields to its possessor: Số điện thoại của tôi → TÔI …

    Vietnamese puts the possessor after the noun (with or without `của`); VSL,
    topic first, signs the possessor first. A time noun before a pronoun is the
    time frame, not a possession (Ngày mai tôi đi làm), and stays first.
    """
    start = 1 if clause and clause[0].tag in CLAUSE_BREAK_TAGS else 0
    i = start
    while i < len(clause) and clause[i].tag in NOUN_TAGS:
        i += 1
    if i == start or i >= len(clause) or any(w.text in times for w in clause[start:i]):
        return clause
    k = i + 1 if clause[i].text == "của" else i
    if k < len(clause) and clause[k].text in pronouns:
        return [*clause[:start], clause[k], *clause[start:i], *clause[k + 1 :]]
    return clause


def possessor_before_object(
    clause: list[Word], pronouns: frozenset[str], times: frozenset[str], stopwords: frozenset[str]
) -> list[Word]:
    """A possessed object yields to its possessor too: Bác sĩ gọi tên của bạn → … GỌI BẠN TÊN.

    The possessor-first order of VSL holds for every noun phrase, not only the
    topic: after a verb or preposition, noun + (của) + pronoun is signed
    pronoun first (after the copula `là` too: Đây là số của tôi → ĐÂY TÔI SỐ).
    Without `của` the pronoun may instead be the subject of what follows (Đây
    là lần đầu tôi đến 'the first time I come'): there it is a possessor only
    if no verb follows it. Time nouns are never possessed.
    """
    out = list(clause)
    a = 1
    while a < len(out):
        i = a
        while i < len(out) and out[i].tag in NOUN_TAGS and out[i].text not in times | pronouns:
            i += 1
        before = out[a - 1]
        governed = before.text == "là" or (before.tag in (*VERB_TAGS, "E") and before.text != "của")
        k = i + 1 if i < len(out) and out[i].text == "của" else i
        nxt = out[k + 1] if k + 1 < len(out) else None
        free = k > i or nxt is None or nxt.tag not in VERB_TAGS or nxt.text in stopwords
        if i > a and governed and k < len(out) and out[k].text in pronouns and free:
            out[a : k + 1] = [out[k], *out[a:i], *out[i:k]]
            a = k + 1
        else:
            a = max(i, a + 1)
    return out


def time_first(clause: list[Word], times: frozenset[str]) -> list[Word]:
    """A time phrase after the verb moves before it: Tôi có hẹn lúc 9 giờ sáng → TÔI GIỜ 9 SÁNG HẸN.

    VSL, like most sign languages, sets the time frame first and marks no tense
    on the verb (đã/sẽ have no sign), so a point in time (giờ, sáng, hôm nay,
    ngày mai…) with its numbers goes before the first verb, after the subject.
    `vào` 'on/at' before it goes with it and is not signed. A time after
    another preposition is a range or a relation (từ 8 giờ, sau 2 giờ, trước
    tối nay) and stays where it is; so does a clause with no verb.
    """
    verb = next((i for i, w in enumerate(clause) if w.tag in VERB_TAGS), None)
    if verb is None:
        return clause
    i = verb + 1
    while i < len(clause) and clause[i].text not in times:
        i += 1
    if i >= len(clause):
        return clause
    a = i
    while a > verb + 1 and clause[a - 1].tag == "M":
        a -= 1
    prev = clause[a - 1]
    relation = prev.tag == "E" or (prev.text in TIME_RELATIONS and prev.tag not in VERB_TAGS)
    if prev.text != "vào" and relation:
        return clause
    b = i
    while b < len(clause) and (clause[b].text in times or clause[b].tag == "M"):
        b += 1
    run = clause[a:b]
    if prev.text == "vào":
        a -= 1
    return [*clause[:verb], *run, *clause[verb:a], *clause[b:]]


def to_clause_end(
    clause: list[Word], movable: frozenset[str], order: int, last: bool = False
) -> list[Word]:
    """Move modal/aspect/negation (or question) words to the end of their clause.

    `order` keeps a clause-final punctuation mark last; `last` moves the
    yes/no question sign (tag Q) too, so that it closes the clause. Conjunctions
    and nouns spelled like a modal (còn 'and', phải 'right') stay where they are.
    Negation closes the clause after the modal it negates: Tôi không muốn khám
    → TÔI KHÁM MUỐN KHÔNG (the negator follows what it scopes over).
    """
    tail = [
        w
        for w in clause[:order]
        if (w.text in movable and w.tag not in ("C", "CC", "N")) or (last and w.tag in ("Q", "WH"))
    ]
    if not tail:
        return clause
    keep = [w for w in clause[:order] if not any(w is t for t in tail)]
    tail.sort(key=lambda w: w.text in NEGATIONS)  # stable: the rest keep their order
    return keep + tail + clause[order:]


def front_possessors(words: list[Word], lists: VietnameseLists) -> list[Word]:
    """Possessor first in every clause; runs before `của` is dropped."""
    out: list[Word] = []
    for clause in clauses(words):
        clause = possessor_first(clause, lists.pronouns, lists.times)
        out += possessor_before_object(clause, lists.pronouns, lists.times, lists.stopwords)
    return out


def reorder(words: list[Word], lists: VietnameseLists) -> list[Word]:
    """VSL order, clause by clause: numeral after noun, time first, modals, wh-words last."""
    out: list[Word] = []
    for clause in clauses(words):
        n = len(clause)
        body_end = n - 1 if clause[-1].tag == "CH" and n > 1 else n
        clause = numerals_after_nouns(clause)
        clause = time_first(clause, lists.times)
        clause = to_clause_end(clause, lists.modals, body_end)
        clause = to_clause_end(clause, lists.questions, body_end, last=True)
        out.extend(clause)
    return out


# ── glosses ──────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class VietnameseLists:
    """The word lists the rules use (built-in from `resources/`, extendable by the user)."""

    stopwords: frozenset[str]  # function words with no sign of their own
    phrases: frozenset[str]  # fixed expressions signed as one (ở đâu, phải không)
    modals: frozenset[str]  # modal/aspect/negation words that close a VSL clause
    questions: frozenset[str]  # wh-words, last in a VSL clause
    pronouns: frozenset[str]  # personal pronouns, possessors signed first
    numerals: dict[str, str]  # number words tagged M → digit
    question_frames: frozenset[str] = frozenset()  # có/cần/phải… of a `… không?` question
    indefinites: frozenset[str] = frozenset()  # wh-words meaning 'any' in a yes/no question
    times: frozenset[str] = frozenset()  # time-point words: their phrase is signed first


@lru_cache(maxsize=1)
def builtin_lists() -> VietnameseLists:
    numerals = {}
    for entry in read_word_list("vi_numerals.txt"):
        word, digit = entry.rsplit(" ", 1)
        numerals[word] = digit
    return VietnameseLists(
        stopwords=read_word_list("vi_stopwords.txt"),
        phrases=read_word_list("vi_phrases.txt"),
        modals=read_word_list("vi_clause_final.txt"),
        questions=read_word_list("vi_question_words.txt"),
        pronouns=read_word_list("vi_pronouns.txt"),
        numerals=numerals,
        question_frames=read_word_list("vi_question_frames.txt"),
        indefinites=read_word_list("vi_indefinites.txt"),
        times=read_word_list("vi_time_words.txt"),
    )


# Number-system words around the digit words: "hai mươi lăm" = 25, "một trăm linh năm" = 105.
NUMBER_DIGIT_VARIANTS = {"mốt": 1, "tư": 4, "lăm": 5, "nhăm": 5}
NUMBER_MULTIPLIERS = {"mươi": 10, "trăm": 100, "nghìn": 1000, "ngàn": 1000}
NUMBER_FILLERS = frozenset({"linh", "lẻ"})


def spelled_number(words: list[str], numerals: dict[str, str]) -> int | None:
    """The value of a run of number words, or None if one is not a number word."""
    total, current, said = 0, 0, False  # said: a digit word was said since the last multiplier
    for w in words:
        if w in numerals or w in NUMBER_DIGIT_VARIANTS:
            current += int(numerals.get(w, NUMBER_DIGIT_VARIANTS.get(w, 0)))
            said = True
        elif w == "mười":
            current, said = current + 10, True
        elif w in NUMBER_MULTIPLIERS:
            factor = NUMBER_MULTIPLIERS[w]
            if factor >= 1000:  # multiplies everything said so far: "hai trăm nghìn"
                total, current = (total + current or 1) * factor, 0
            elif factor == 100:
                total, current = total + (current if said else 1) * factor, 0
            else:
                current = (current if said else 1) * factor
            said = False
        elif w not in NUMBER_FILLERS:
            return None
    return total + current


def numbers_to_digits(words: list[Word], numerals: dict[str, str]) -> list[Word]:
    """Numbers are signed digit by digit: 24 → 2 4, hai mươi (tagged M) → 2 0.

    A magnitude word after written digits is signed as a word, as written:
    200 nghìn → 2 0 0 NGHÌN (not 200 followed by a spelled 'one thousand').
    """
    out: list[Word] = []
    i = 0
    while i < len(words):
        w = words[i]
        if NUMBER.match(w.text):
            out.extend(Word(d, "M") for d in w.text if d.isdigit())
            i += 1
            while i < len(words) and words[i].text in NUMBER_MULTIPLIERS:
                out.append(words[i])
                i += 1
            continue
        j = i
        while j < len(words) and words[j].tag == "M" and not NUMBER.match(words[j].text):
            j += 1
        value = spelled_number([x.text for x in words[i:j]], numerals) if j > i else None
        if value is None:
            out.append(w)
            i += 1
        else:
            out.extend(Word(d, "M") for d in str(value))
            i = j
    return out


def to_glosses(words: list[Word], hyphenate: bool, keep_punctuation: bool = False) -> list[str]:
    """Words → gloss strings (lower case; the caller upper-cases); punctuation dropped."""
    out: list[str] = []
    for w in words:
        if w.tag == "CH" and not keep_punctuation:
            continue
        if hyphenate:
            out.append("-".join(w.syllables))
        else:
            out.extend(w.syllables)
    return out


def derive(
    text: str,
    lists: VietnameseLists,
    segmenter: str,
    reorder_words: bool = True,
    hyphenate: bool = True,
    digits: bool = True,
    keep_punctuation: bool = False,
) -> list[str]:
    """Normalised, lower-cased Vietnamese text → lower-case glosses, the rules in order."""
    words, lexicon = tag_words(spell_clock_times(text), segmenter)
    words = join_phrases(words, lists.phrases)
    words = join_time_expressions(words, lists.times)
    words = split_compounds(words, lexicon)
    closed = lists.stopwords | lists.modals | lists.questions | lists.pronouns
    words = merge_noun_compounds(words, lexicon, closed)
    words = merge_verb_time_compounds(words, lexicon, lists.times)
    words = fuse_ordinal_questions(words, closed)
    if reorder_words:
        words = front_possessors(words, lists)
    words = alternative_questions(words)
    words = ability_in_tag_questions(words, lists.stopwords)
    words = yes_no_questions(words, lists)
    words = drop_unsigned(words, lists)
    if digits:
        words = numbers_to_digits(words, lists.numerals)
    if reorder_words:
        words = reorder(words, lists)
    return to_glosses(words, hyphenate, keep_punctuation)
