"""The text tokenizer of translation: trained on the corpus, saved as one `tokenizer.json`.

A SentencePiece-like sub-word model (BPE) built with HF `tokenizers`:
NFC normalisation, Metaspace pre-tokenisation (`▁` marks a word start), and the
mBART special tokens at mBART's ids (`<s>` 0, `<pad>` 1, `</s>` 2, `<unk>` 3)
followed by one language token (e.g. `de_DE`), so a tokenizer trained here and a
pruned mbart-large-cc25 tokenizer have the same layout and one wrapper reads both.

Sequences follow mBART: the source is `tokens </s> LANG`, the decoder starts at
`LANG` and the target is `tokens </s>`.

Text without spaces between words (Chinese, Japanese) can be split into characters
first (`characters=True`: every Han, kana or Hangul character one piece, never merged):
otherwise the BPE merges whole unspaced sentences into pieces that the space-separated
glosses (`▁今天`) never share with the text (`今天`), and G2T has nothing to copy.

Glosses are encoded either as text (lowercased, split into the same sub-words as
the text) or as their own tokens: added special tokens `<gloss:NAME>`, whose
marker cannot clash with text (an added token is matched anywhere in the input,
so a bare `你们` would swallow the text's `你们`). The tokens that are present in
`tokenizer.json` say which mode a tokenizer uses; nothing else is stored.

`TextTokenizer` (encode, decode, load, save) lives in `slt_serve.tokenizer`, shared
with the torch-free runtime; it is re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from slt_serve.errors import SltError
from slt_serve.tokenizer import (  # noqa: F401  (re-exported: training code imports them here)
    BOS,
    EOS,
    GLOSS_PREFIX,
    GLOSS_SUFFIX,
    PAD,
    SPECIALS,
    TOKENIZER_FILE,
    UNK,
    TextTokenizer,
    gloss_token,
    glosses_as_text,
)

logger = logging.getLogger(__name__)

GLOSS_MODES = ("text", "tokens")
METASPACE = "▁"
# the characters `characters=True` isolates: scripts written without spaces between words
CHARACTERS = r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]"


@dataclass(frozen=True)
class TokenizerOptions:
    """How the text tokenizer is trained."""

    vocab_size: int = 4000  # sub-word pieces incl. specials (fewer when the text has fewer)
    lang: str = "de_DE"  # the language token (mBART codes: de_DE, zh_CN, vi_VN, en_XX)
    glosses: str = "text"  # "text": glosses as lowercased sub-words; "tokens": one token a gloss
    lowercase: bool = False  # lowercase text (the corpora we score are lowercased already)
    characters: bool = False  # Han/kana/Hangul characters one piece each (see the docstring)

    def verify(self) -> TokenizerOptions:
        if self.glosses not in GLOSS_MODES:
            raise SltError(f"gloss mode {self.glosses!r} unknown; choose one of {GLOSS_MODES}")
        if self.vocab_size < len(SPECIALS) + 2:
            raise SltError(f"vocab_size {self.vocab_size} is too small; give at least 100")
        if not self.lang or self.lang in SPECIALS or self.lang.startswith(GLOSS_PREFIX):
            raise SltError(f"language token {self.lang!r} is empty or reserved; give e.g. de_DE")
        return self


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
    if options.characters:
        split = pre_tokenizers.Split(Regex(CHARACTERS), behavior="isolated")
        tok.pre_tokenizer = pre_tokenizers.Sequence([tok.pre_tokenizer, split])
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
