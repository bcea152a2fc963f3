"""The text tokenizer of translation: trained on the corpus, saved as one `tokenizer.json`.

A SentencePiece-like sub-word model (BPE) built with HF `tokenizers`:
NFC normalisation, Metaspace pre-tokenisation (`▁` marks a word start), and the
mBART special tokens at mBART's ids (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3)
followed by one language token (e.g. `de_DE`), so a tokenizer trained here and a
pruned mbart-large-cc25 tokenizer have the same layout and one wrapper reads both.

Sequences follow mBART: the source is `tokens </s> LANG`, the decoder starts at
`LANG` and the target is `tokens </s>`.

Glosses are encoded either as text (lowercased, split into the same sub-words as
the text) or as their own tokens: added special tokens `<gloss:NAME>`, whose
marker cannot clash with text (an added token is matched anywhere in the input,
so a bare `你们` would swallow the text's `你们`). The tokens that are present in
`tokenizer.json` say which mode a tokenizer uses; nothing else is stored.

This module needs only `tokenizers` (no torch, no transformers): serving uses it
to detokenise.
"""

from __future__ import annotations

import logging
import os
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

logger = logging.getLogger(__name__)

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
SPECIALS = (BOS, PAD, EOS, UNK)  # at ids 0..3, as mBART
GLOSS_PREFIX, GLOSS_SUFFIX = "<gloss:", ">"
TOKENIZER_FILE = "tokenizer.json"
GLOSS_MODES = ("text", "tokens")
METASPACE = "▁"


@dataclass(frozen=True)
class TokenizerOptions:
    """How the text tokenizer is trained."""

    vocab_size: int = 4000  # sub-word pieces incl. specials (fewer when the text has fewer)
    lang: str = "de_DE"  # the language token (mBART codes: de_DE, zh_CN, vi_VN, en_XX)
    glosses: str = "text"  # "text": glosses as lowercased sub-words; "tokens": one token a gloss
    lowercase: bool = False  # lowercase text (the corpora we score are lowercased already)

    def verify(self) -> TokenizerOptions:
        if self.glosses not in GLOSS_MODES:
            raise SltError(f"gloss mode {self.glosses!r} unknown; choose one of {GLOSS_MODES}")
        if self.vocab_size < len(SPECIALS) + 2:
            raise SltError(f"vocab_size {self.vocab_size} is too small; give at least 100")
        if not self.lang or self.lang in SPECIALS or self.lang.startswith(GLOSS_PREFIX):
            raise SltError(f"language token {self.lang!r} is empty or reserved; give e.g. de_DE")
        return self


def gloss_token(gloss: str) -> str:
    """The added token that stands for one gloss when glosses are their own tokens."""
    return f"{GLOSS_PREFIX}{gloss}{GLOSS_SUFFIX}"


def glosses_as_text(glosses: Sequence[str]) -> str:
    """A gloss sequence as the text its sub-words are taken from (lowercased, NFC)."""
    return unicodedata.normalize("NFC", " ".join(glosses)).lower()


def _new_tokenizer(options: TokenizerOptions) -> tuple[Tokenizer, trainers.Trainer]:
    # BPE, not Unigram: tokenizers' UnigramTrainer (0.23) gives a different vocabulary on
    # every run, even single-threaded; BPE is reproducible and gave shorter sequences on
    # PHOENIX (15.6 vs 21.8 pieces per dev sentence at 3 000 pieces).
    tok = Tokenizer(models.BPE(unk_token=UNK))
    trainer = trainers.BpeTrainer(
        vocab_size=options.vocab_size, special_tokens=[*SPECIALS, options.lang], show_progress=False
    )
    steps = [normalizers.NFC()] + ([normalizers.Lowercase()] if options.lowercase else [])
    tok.normalizer = normalizers.Sequence(steps)
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=METASPACE, prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement=METASPACE, prepend_scheme="always")
    return tok, trainer


def train_tokenizer(
    texts: Iterable[str], glosses: Iterable[Sequence[str]], options: TokenizerOptions
) -> TextTokenizer:
    """Train on the corpus text (plus the gloss text when glosses are sub-words).

    Deterministic: the same corpus and options give the same `tokenizer.json`.
    """
    options.verify()
    gloss_seqs = [list(g) for g in glosses]
    corpus = [t for t in texts if t.strip()]
    if not corpus:
        raise SltError("no text to train the tokenizer on: the training split has empty 'text'")
    if options.glosses == "text":
        corpus += [glosses_as_text(g) for g in gloss_seqs if g]
    tok, trainer = _new_tokenizer(options)
    tok.train_from_iterator(corpus, trainer=trainer, length=len(corpus))
    tok.add_special_tokens([options.lang])
    if options.glosses == "tokens":
        tok.add_special_tokens([gloss_token(g) for g in sorted({g for s in gloss_seqs for g in s})])
    logger.info("trained a BPE tokenizer: %d tokens", tok.get_vocab_size())
    return TextTokenizer(tok)


class TextTokenizer:
    """Encode/decode text and gloss sequences with a `tokenizer.json` in our layout."""

    def __init__(self, tokenizer: Tokenizer):
        self.tokenizer = tokenizer
        vocab = tokenizer.get_vocab(with_added_tokens=True)
        for i, s in enumerate(SPECIALS):
            if vocab.get(s) != i:
                raise SltError(
                    f"tokenizer: special token {s} is not at id {i}; "
                    "train it with slt_training.text.tokenizer or prune an mBART with slt prune-mbart"
                )
        added = [t.content for t in tokenizer.get_added_tokens_decoder().values() if t.special]
        langs = [t for t in added if t not in SPECIALS and not t.startswith(GLOSS_PREFIX)]
        langs = [t for t in langs if t != "<mask>"]
        if len(langs) != 1:
            raise SltError(f"tokenizer: expected one language token, found {langs or 'none'}")
        self.lang = langs[0]
        self.gloss_ids = {
            t[len(GLOSS_PREFIX) : -len(GLOSS_SUFFIX)]: vocab[t]
            for t in added
            if t.startswith(GLOSS_PREFIX)
        }
        self.pad_id, self.eos_id, self.unk_id = vocab[PAD], vocab[EOS], vocab[UNK]
        self.bos_id, self.lang_id = vocab[BOS], vocab[self.lang]

    @property
    def glosses_as_tokens(self) -> bool:
        return bool(self.gloss_ids)

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size(with_added_tokens=True)

    @classmethod
    def load(cls, path: str | os.PathLike) -> TextTokenizer:
        """Load `tokenizer.json` (or a folder holding one)."""
        path = Path(path)
        if path.is_dir():
            path = path / TOKENIZER_FILE
        if not path.is_file():
            raise SltError(f"{path}: tokenizer file not found; train or prune one first")
        try:
            return cls(Tokenizer.from_file(str(path)))
        except Exception as e:  # tokenizers raises a bare Exception on a malformed file
            if isinstance(e, SltError):
                raise
            raise SltError(f"{path}: not a tokenizers JSON file ({e})") from None

    def save(self, path: str | os.PathLike) -> Path:
        """Write `tokenizer.json` atomically (into `path` when it is a folder)."""
        path = Path(path)
        if path.is_dir() or not path.suffix:
            path = path / TOKENIZER_FILE
        with atomic_write(path) as f:
            f.write(self.tokenizer.to_str(pretty=True))
        return path

    def pieces(self, text: str) -> list[int]:
        """Sub-word ids of a text, without specials."""
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def source_ids(self, glosses: Sequence[str]) -> list[int]:
        """Encoder input for a gloss sequence: `glosses </s> LANG`."""
        if self.glosses_as_tokens:
            ids = [self.gloss_ids.get(g, self.unk_id) for g in glosses]
        else:
            ids = self.pieces(glosses_as_text(glosses))
        return [*ids, self.eos_id, self.lang_id]

    def target_ids(self, text: str) -> list[int]:
        """Decoder labels for a text: `tokens </s>` (the decoder starts at LANG)."""
        return [*self.pieces(text), self.eos_id]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of token ids; specials, glosses and the language token are dropped."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def decode_batch(self, batch: Sequence[Sequence[int]]) -> list[str]:
        return [s.strip() for s in self.tokenizer.decode_batch([list(b) for b in batch])]
