"""The translation tokenizer at serving time: our `tokenizer.json` layout, read with HF `tokenizers` only.

The layout (written by `slt_training.text.tokenizer.train_tokenizer` or `slt prune-mbart`):
mBART's specials at ids 0..3 (`<s>`, `<pad>`, `</s>`, `<unk>`), one language token
(e.g. `de_DE`), and, when glosses are their own tokens, one added special token
`<gloss:NAME>` per gloss. The source is `tokens </s> LANG`, the decoder starts at
`LANG` and the target is `tokens </s>`. Training and serving share this class, so
a bundle encodes glosses and decodes text exactly as training did.
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from tokenizers import Tokenizer

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write

BOS, PAD, EOS, UNK = "<s>", "<pad>", "</s>", "<unk>"
SPECIALS = (BOS, PAD, EOS, UNK)  # at ids 0..3, as mBART
GLOSS_PREFIX, GLOSS_SUFFIX = "<gloss:", ">"
TOKENIZER_FILE = "tokenizer.json"


def gloss_token(gloss: str) -> str:
    """The added token that stands for one gloss when glosses are their own tokens."""
    return f"{GLOSS_PREFIX}{gloss}{GLOSS_SUFFIX}"


def glosses_as_text(glosses: Sequence[str]) -> str:
    """A gloss sequence as the text its sub-words are taken from (lowercased, NFC)."""
    return unicodedata.normalize("NFC", " ".join(glosses)).lower()


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
