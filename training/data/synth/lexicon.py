"""The synthetic language's lexicon: its words, their glosses and the sign each one is.

Words come from `wordlist`; the lexicon of size n is the first n words of one
fixed priority order, and word i of that order always gets sign form i, so a gloss
looks the same whatever the corpus size or seed (a model trained on one corpus
reads another). Sign forms are picked greedily to differ from all earlier ones in
as many of location, movement and hands as possible.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from functools import cached_property, lru_cache

import numpy as np

from slt_serve.errors import SltError
from slt_training.data.synth import wordlist
from slt_training.data.synth.motion import (
    HANDS,
    HANDSHAPES,
    LEFT_WRIST,
    LOCATIONS,
    MOUTHS,
    MOVEMENT_SECONDS,
    ORIENTATIONS,
    RIGHT_WRIST,
    SignForm,
)

LANGUAGES = ("en", "vi")
SIGN_FORM_SEED = 20_240_611  # fixed: the same gloss is the same sign in every corpus
# How many words of each category a 48-word lexicon holds; larger ones grow in proportion.
CATEGORY_WEIGHTS = {
    "pronoun": 4,
    "wh": 3,
    "function": 2,
    "time": 4,
    "motion": 2,
    "person": 6,
    "thing": 12,
    "place": 4,
    "verb": 6,
    "feeling": 3,
    "quality": 2,
}


@dataclass(frozen=True)
class Word:
    """One word of the language in both text languages."""

    category: str  # a key of CATEGORY_WEIGHTS
    en: tuple[str, ...]  # English forms: (base,) or (base, 3rd person, past)
    vi: str  # Vietnamese text form
    gloss_en: str
    gloss_vi: str
    extra: tuple[str, ...] = ()  # noun class / classes taken / tense / person
    mass: bool = False  # English noun used without "a"

    def gloss(self, lang: str) -> str:
        return self.gloss_vi if lang == "vi" else self.gloss_en


def _default_gloss(text: str) -> str:
    return "-".join(text.upper().split())


def parse_word(category: str, line: str) -> Word:
    """One `wordlist` line → Word (see wordlist's docstring for the format)."""
    fields = line.split("|")
    en_field, vi_field = fields[0], fields[1]
    extra = tuple(fields[2].split()) if len(fields) > 2 else ()
    en_field, _, gloss_en = en_field.partition("=")
    vi, _, gloss_vi = vi_field.partition("=")
    mass = en_field.startswith("*")
    en = tuple(f.strip() for f in en_field.lstrip("*").split(","))
    return Word(
        category=category,
        en=en,
        vi=vi.strip(),
        gloss_en=gloss_en or _default_gloss(en[0]),
        gloss_vi=gloss_vi or _default_gloss(vi),
        extra=extra,
        mass=mass,
    )


def _category_lists() -> dict[str, list[Word]]:
    lists = {
        "pronoun": wordlist.PRONOUNS,
        "wh": wordlist.WH_WORDS,
        "function": (wordlist.NEGATION, wordlist.WANT, wordlist.CAN),
        "time": wordlist.TIMES,
        "motion": wordlist.MOTION_VERBS,
        "person": wordlist.PERSONS,
        "thing": wordlist.THINGS,
        "place": wordlist.PLACES,
        "verb": wordlist.VERBS,
        "feeling": wordlist.FEELINGS,
        "quality": wordlist.QUALITIES,
    }
    return {c: [parse_word(c, line) for line in lines] for c, lines in lists.items()}


@lru_cache(maxsize=1)
def priority_order() -> tuple[Word, ...]:
    """All words: one of each category first, then by weight (deterministic)."""
    lists = _category_lists()
    taken = dict.fromkeys(lists, 0)
    order: list[Word] = []
    for cat in lists:  # every template is usable from the first dozen words on
        order.append(lists[cat][0])
        taken[cat] = 1
    while True:
        open_cats = [c for c in lists if taken[c] < len(lists[c])]
        if not open_cats:
            return tuple(order)
        cat = min(open_cats, key=lambda c: (taken[c] + 1) / CATEGORY_WEIGHTS[c])
        order.append(lists[cat][taken[cat]])
        taken[cat] += 1


VERTICAL = ("up", "down", "tap", "open_close")  # "parallel" would equal "mirror"


def _motion_combos() -> list[tuple[str, str, str]]:
    combos = [
        (loc, mov, hands)
        for loc, mov, hands in itertools.product(LOCATIONS, MOVEMENT_SECONDS, HANDS)
        if hands != "base" and not (hands == "parallel" and mov in VERTICAL)
    ]
    combos += [("base", mov, "base") for mov in MOVEMENT_SECONDS]
    return combos


def _trajectories(combos: list[tuple[str, str, str]]) -> np.ndarray:
    """Both wrists over a sign, (n_combos, 16 × 4) body units: what a model must tell apart."""
    u = np.linspace(0.0, 1.0, 16)
    out = []
    for loc, mov, hands in combos:
        form = SignForm(loc if loc != "base" else "neutral", mov, hands, "B", "up", "closed")
        p = form.poses(u)
        out.append(np.concatenate([p[:, RIGHT_WRIST], p[:, LEFT_WRIST]], 1).ravel())
    return np.asarray(out)


def _distances(traj: np.ndarray, j: int) -> np.ndarray:
    """Mean distance over sign time between the wrists of combo j and every combo."""
    d = (traj - traj[j]).reshape(len(traj), -1, 2)
    return np.sqrt((d**2).sum(-1)).mean(-1)


def _pick_shape(chosen: list[int], shapes_of: list[str], dist: np.ndarray, used: dict) -> str:
    """The least-used hand shape not worn by the 3 motions nearest to this one."""
    near = sorted(range(len(chosen)), key=lambda k: dist[chosen[k]])[:3]
    avoid = {shapes_of[k] for k in near}
    order = sorted(HANDSHAPES, key=lambda s: (used[s], list(HANDSHAPES).index(s)))
    return next((s for s in order if s not in avoid), order[0])


@lru_cache(maxsize=1)
def sign_forms() -> tuple[SignForm, ...]:
    """Sign form i for priority word i: farthest-point picks of motions, varied hand shapes.

    Each new sign takes the motion whose wrist paths are farthest from every sign
    picked before it, and a hand shape unlike those of its nearest neighbours.
    """
    rng = np.random.default_rng(SIGN_FORM_SEED)
    combos = _motion_combos()
    rng.shuffle(combos)
    traj = _trajectories(combos)
    words = priority_order()
    min_dist = np.full(len(combos), np.inf)
    chosen: list[int] = []
    shapes_of: list[str] = []
    used = dict.fromkeys(HANDSHAPES, 0)
    orients, mouths = list(ORIENTATIONS), list(MOUTHS)
    forms = []
    for i, word in enumerate(words[: len(combos)]):
        j = int(np.argmax(np.where(np.isin(np.arange(len(combos)), chosen), -1.0, min_dist)))
        dist = _distances(traj, j)
        shape = _pick_shape(chosen, shapes_of, dist, used) if chosen else "B"
        chosen.append(j)
        shapes_of.append(shape)
        used[shape] += 1
        min_dist = np.minimum(min_dist, dist)
        loc, mov, hands = combos[j]
        forms.append(
            SignForm(
                location=loc,
                movement=mov,
                hands=hands,
                shape=shape,
                orientation=orients[(i * 3 + i // 4) % len(orients)],
                mouth=mouths[(i * 3) % len(mouths)],
                brow=1.0 if word.category == "wh" else (-1.0 if word.gloss_en == "NOT" else 0.0),
            )
        )
    return tuple(forms)


@dataclass(frozen=True)
class Entry:
    """A word of the lexicon with its gloss in the corpus language and its sign."""

    word: Word
    gloss: str
    sign: SignForm


@dataclass(frozen=True)
class Lexicon:
    """The n words a corpus uses, in priority order, with their signs."""

    lang: str
    entries: tuple[Entry, ...]

    @property
    def glosses(self) -> list[str]:
        return [e.gloss for e in self.entries]

    def by_category(self, category: str) -> list[Entry]:
        return [e for e in self.entries if e.word.category == category]

    def sign(self, gloss: str) -> SignForm:
        return self._by_gloss[gloss].sign

    @cached_property
    def _by_gloss(self) -> dict[str, Entry]:
        return {e.gloss: e for e in self.entries}

    def describe(self) -> list[dict]:
        """JSON-ready description (for synth.json)."""
        return [
            {"gloss": e.gloss, "category": e.word.category, "text": text_form(e.word, self.lang)}
            | {"sign": asdict(e.sign)}
            for e in self.entries
        ]


def text_form(word: Word, lang: str) -> str:
    return word.vi if lang == "vi" else word.en[0]


def max_glosses() -> int:
    return min(len(priority_order()), len(_motion_combos()))


MIN_GLOSSES = 16


def build_lexicon(num_glosses: int, lang: str = "en") -> Lexicon:
    """The first `num_glosses` words of the priority order, glossed in `lang`."""
    if lang not in LANGUAGES:
        raise SltError(f"unknown language {lang!r}: choose from {', '.join(LANGUAGES)}")
    if not MIN_GLOSSES <= num_glosses <= max_glosses():
        raise SltError(
            f"--glosses {num_glosses} is out of range: the synthetic language has "
            f"{MIN_GLOSSES}..{max_glosses()} glosses"
        )
    words: Sequence[Word] = priority_order()[:num_glosses]
    forms = sign_forms()
    entries = tuple(Entry(w, w.gloss(lang), forms[i]) for i, w in enumerate(words))
    return Lexicon(lang=lang, entries=entries)
