"""Sentences of the synthetic language: gloss order differs from text order.

The sign language puts time first, the topic/object before the verb, the verb last,
negation, modals and question words at the very end, and adjectives after their
noun. Text is English or Vietnamese in spoken order (time at the end) with function
words that have no sign ("the", "did", "to"; "đã", "sẽ"). Every template reorders,
so a model cannot translate by copying glosses in order.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

import numpy as np

from slt_training.data.synth.lexicon import Entry, Lexicon

TENSES = ("past", "future", "habit")
VI_TENSE_MARK = {"past": "đã", "future": "sẽ", "habit": ""}
VOWELS = "aeiou"


@dataclass(frozen=True)
class Sentence:
    """One sentence: text chunks in spoken order and the glosses in signed order."""

    text: str  # lowercase, with final punctuation
    glosses: tuple[str, ...]  # signed order
    chunks: tuple[str, ...]  # the text cut into the pieces glosses align to
    alignment: tuple[int, ...]  # alignment[k]: index in `chunks` of the words of gloss k

    @property
    def gloss(self) -> str:
        return " ".join(self.glosses)


@dataclass
class _Builder:
    """Collects text chunks (some carrying a gloss); the template gives the signed order."""

    chunks: list[tuple[str, str | None]] = field(default_factory=list)

    def add(self, text: str, entry: Entry | None = None) -> int:
        self.chunks.append((text, entry.gloss if entry else None))
        return len(self.chunks) - 1

    def build(self, order: list[int | None], question: bool) -> Sentence:
        order = [i for i in order if i is not None]
        texts = [t for t, _ in self.chunks]
        text = " ".join(t for t in texts if t) + ("?" if question else ".")
        glosses = tuple(self.chunks[i][1] or "" for i in order)
        assert all(glosses), "every signed chunk carries a gloss"
        return Sentence(text, glosses, tuple(texts), tuple(order))


class Grammar:
    """Draws sentences from a lexicon, optionally restricted to a set of glosses."""

    def __init__(self, lexicon: Lexicon) -> None:
        self.lexicon = lexicon
        self.lang = lexicon.lang
        self._templates: list[tuple[float, Callable]] = [
            (3.0, self._statement),
            (2.0, self._negation),
            (2.0, self._modal),
            (2.0, self._motion),
            (1.5, self._feeling),
            (1.0, self._what),
            (1.0, self._where_when),
            (1.5, self._who),
        ]

    def sample(
        self, rng: np.random.Generator, allowed: Collection[str] | None = None, tries: int = 200
    ) -> Sentence | None:
        """A random sentence using only `allowed` glosses; None if none was found in `tries`."""
        weights = np.array([w for w, _ in self._templates])
        for _ in range(tries):
            k = rng.choice(len(self._templates), p=weights / weights.sum())
            pool = _Pool(self.lexicon, allowed, rng)
            try:
                return self._templates[k][1](pool)
            except _Missing:
                continue
        return None

    # --- templates: each returns a Sentence or raises _Missing -------------------------

    def _statement(self, p: _Pool) -> Sentence:
        time, subj = p.maybe("time"), p.subject()
        verb, obj = p.verb_object(subj)
        tense = _tense(time, p.rng)
        b = _Builder()
        s = self._subject(b, subj)
        v = self._verb(b, verb, subj, tense)
        o, a = self._object(b, obj, p.quality_for(obj))
        t = self._time(b, time)
        return b.build([t, s, o, a, v], question=False)

    def _negation(self, p: _Pool) -> Sentence:
        time, subj, neg = p.maybe("time"), p.subject(), p.function("NOT")
        verb, obj = p.verb_object(subj)
        tense = _tense(time, p.rng)
        b = _Builder()
        s = self._subject(b, subj)
        if self.lang == "vi":
            b.add(VI_TENSE_MARK[tense] if tense != "habit" else "")
            n = b.add(neg.word.vi, neg)
            v = b.add(verb.word.vi, verb)
        else:
            b.add(_en_aux(subj, tense))
            n = b.add("not", neg)
            v = b.add(verb.word.en[0], verb)
        o, a = self._object(b, obj, p.quality_for(obj))
        t = self._time(b, time)
        return b.build([t, s, o, a, v, n], question=False)

    def _modal(self, p: _Pool) -> Sentence:
        subj, modal = p.subject(), p.function("WANT", "CAN")
        verb, obj = p.verb_object(subj)
        b = _Builder()
        s = self._subject(b, subj)
        if self.lang == "vi":
            m = b.add(modal.word.vi, modal)
        elif modal.word.en[0] == "want":
            m = b.add(modal.word.en[1] if _third(subj) else "want", modal)
            b.add("to")
        else:
            m = b.add("can", modal)
        v = b.add(verb.word.vi if self.lang == "vi" else verb.word.en[0], verb)
        o, a = self._object(b, obj, p.quality_for(obj))
        return b.build([s, o, a, v, m], question=False)

    def _motion(self, p: _Pool) -> Sentence:
        time, subj, verb, place = p.maybe("time"), p.subject(), p.one("motion"), p.one("place")
        tense = _tense(time, p.rng)
        b = _Builder()
        s = self._subject(b, subj)
        v = self._verb(b, verb, subj, tense)
        if self.lang == "en":
            b.add("to the")
        pl = b.add(place.word.vi if self.lang == "vi" else place.word.en[0], place)
        t = self._time(b, time)
        return b.build([t, s, pl, v], question=False)

    def _feeling(self, p: _Pool) -> Sentence:
        time, subj, adj = p.one("time"), p.subject(), p.one("feeling")
        neg = p.function("NOT") if p.rng.random() < 0.3 else None
        b = _Builder()
        s = self._subject(b, subj)
        tense = _tense(time, p.rng)
        if self.lang == "vi":
            b.add(VI_TENSE_MARK[tense])
            n = b.add(neg.word.vi, neg) if neg else None
        else:
            b.add(_en_be(subj, tense))
            n = b.add("not", neg) if neg else None
        a = b.add(adj.word.vi if self.lang == "vi" else adj.word.en[0], adj)
        t = self._time(b, time)
        return b.build([t, s, a, n], question=False)

    def _what(self, p: _Pool) -> Sentence:
        time, subj, wh = p.one("time"), p.subject(), p.wh("what")
        verb = p.verb_taking_things()
        tense = _tense(time, p.rng)
        b = _Builder()
        if self.lang == "vi":
            s = self._subject(b, subj)
            b.add(VI_TENSE_MARK[tense])
            v = b.add(verb.word.vi, verb)
            w = b.add(wh.word.vi, wh)
        else:
            w = b.add("what", wh)
            b.add(_en_aux(subj, tense))
            s = self._subject(b, subj)
            v = b.add(verb.word.en[0], verb)
        t = self._time(b, time)
        return b.build([t, s, v, w], question=True)

    def _where_when(self, p: _Pool) -> Sentence:
        subj, wh = p.subject(), p.wh("where", "when")
        verb, obj = p.verb_object(subj)
        tense = "past" if wh.word.en[0] == "where" else "future"
        b = _Builder()
        w = None
        if self.lang == "en" or wh.word.en[0] == "when":
            w = b.add(wh.word.vi if self.lang == "vi" else wh.word.en[0], wh)
        if self.lang == "en":
            b.add(_en_aux(subj, tense))
        s = self._subject(b, subj)
        if self.lang == "vi":
            b.add(VI_TENSE_MARK[tense])
        v = b.add(verb.word.vi if self.lang == "vi" else verb.word.en[0], verb)
        o, a = self._object(b, obj, p.quality_for(obj))
        if w is None:
            w = b.add(wh.word.vi, wh)
        return b.build([s, o, a, v, w], question=True)

    def _who(self, p: _Pool) -> Sentence:
        wh, time = p.wh("who"), p.maybe("time")
        tense = _tense(time, p.rng)
        b = _Builder()
        w = b.add(wh.word.vi if self.lang == "vi" else "who", wh)
        if p.rng.random() < 0.35:  # who is tired?
            adj = p.one("feeling")
            if self.lang == "en":
                b.add({"past": "was", "future": "will be", "habit": "is"}[tense])
            a = b.add(adj.word.vi if self.lang == "vi" else adj.word.en[0], adj)
            t = self._time(b, time)
            return b.build([t, a, w], question=True)
        verb, obj = p.verb_object()
        v = self._verb(b, verb, None, tense)
        o, a = self._object(b, obj, p.quality_for(obj))
        t = self._time(b, time)
        return b.build([t, o, a, v, w], question=True)

    # --- phrases ------------------------------------------------------------------------

    def _subject(self, b: _Builder, subj: Entry) -> int:
        if self.lang == "vi" or subj.word.category == "pronoun":
            return b.add(subj.word.vi if self.lang == "vi" else subj.word.en[0], subj)
        b.add("the")
        return b.add(subj.word.en[0], subj)

    def _verb(self, b: _Builder, verb: Entry, subj: Entry | None, tense: str) -> int:
        if self.lang == "vi":
            b.add(VI_TENSE_MARK[tense])
            return b.add(verb.word.vi, verb)
        base, third, past = verb.word.en
        if tense == "past":
            return b.add(past, verb)
        if tense == "future":
            b.add("will")
            return b.add(base, verb)
        return b.add(third if subj is None or _third(subj) else base, verb)

    def _object(self, b: _Builder, obj: Entry, adj: Entry | None) -> tuple[int, int | None]:
        if self.lang == "vi":
            o = b.add(obj.word.vi, obj)
            return o, (b.add(adj.word.vi, adj) if adj else None)
        first = adj.word.en[0] if adj else obj.word.en[0]
        if obj.word.category == "person" or obj.word.mass:
            b.add("the")
        else:
            b.add("an" if first[0] in VOWELS else "a")
        a = b.add(adj.word.en[0], adj) if adj else None
        return b.add(obj.word.en[0], obj), a

    def _time(self, b: _Builder, time: Entry | None) -> int | None:
        if time is None:
            return None
        return b.add(time.word.vi if self.lang == "vi" else time.word.en[0], time)


class _Missing(Exception):
    """A template needs a word the allowed glosses do not have."""


class _Pool:
    """Picks words for one sentence from the lexicon entries whose gloss is allowed."""

    def __init__(self, lexicon: Lexicon, allowed: Collection[str] | None, rng: np.random.Generator):
        ok = set(allowed) if allowed is not None else None
        self.entries = [e for e in lexicon.entries if ok is None or e.gloss in ok]
        self.rng = rng

    def _pick(self, candidates: list[Entry]) -> Entry:
        if not candidates:
            raise _Missing
        return candidates[int(self.rng.integers(len(candidates)))]

    def one(self, category: str) -> Entry:
        return self._pick([e for e in self.entries if e.word.category == category])

    def maybe(self, category: str, p: float = 0.5) -> Entry | None:
        return self.one(category) if self.rng.random() < p else None

    def subject(self) -> Entry:
        cat = "pronoun" if self.rng.random() < 0.5 else "person"
        try:
            return self.one(cat)
        except _Missing:
            return self.one("person" if cat == "pronoun" else "pronoun")

    def function(self, *english: str) -> Entry:
        return self._pick([e for e in self.entries if e.word.gloss_en in english])

    def wh(self, *english: str) -> Entry:
        return self._pick(
            [e for e in self.entries if e.word.category == "wh" and e.word.en[0] in english]
        )

    def _objects(self, verb: Entry) -> list[Entry]:
        classes = set(verb.word.extra)
        return [
            e
            for e in self.entries
            if (e.word.category == "thing" and e.word.extra[0] in classes)
            or (e.word.category == "person" and "person" in classes)
        ]

    def verb_object(self, subject: Entry | None = None) -> tuple[Entry, Entry]:
        """A verb and an object it takes (never the subject: no "the nurse sees the nurse")."""
        verbs = [e for e in self.entries if e.word.category == "verb" and self._objects(e)]
        verb = self._pick(verbs)
        return verb, self._pick([e for e in self._objects(verb) if e is not subject])

    def verb_taking_things(self) -> Entry:
        verbs = [
            e for e in self.entries if e.word.category == "verb" and "person" not in e.word.extra
        ]
        return self._pick(verbs)

    def quality_for(self, obj: Entry, p: float = 0.3) -> Entry | None:
        if obj.word.category != "thing" or self.rng.random() >= p:
            return None
        fits = [
            e
            for e in self.entries
            if e.word.category == "quality" and obj.word.extra[0] in e.word.extra
        ]
        return self._pick(fits) if fits else None


def _tense(time: Entry | None, rng: np.random.Generator) -> str:
    if time is not None:
        return time.word.extra[0]
    return TENSES[int(rng.integers(len(TENSES)))]


def _third(subj: Entry) -> bool:
    return subj.word.category != "pronoun" or subj.word.extra[0] == "3s"


def _en_aux(subj: Entry, tense: str) -> str:
    return {"past": "did", "future": "will"}.get(tense, "does" if _third(subj) else "do")


def _en_be(subj: Entry, tense: str) -> str:
    if tense == "past":
        return "was" if _third(subj) or subj.word.extra[0] == "1s" else "were"
    if tense == "future":
        return "will be"
    if subj.word.extra and subj.word.extra[0] == "1s" and subj.word.category == "pronoun":
        return "am"
    return "is" if _third(subj) else "are"
