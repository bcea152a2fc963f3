"""The tiny mBART and tokenizer that the translation, export and runtime tests share.

Four gloss/text pairs (German and Vietnamese, so non-ASCII text goes through), a
120-piece tokenizer trained on them and the "tiny" mBART preset (d_model 32) without
dropout: a model overfits the pairs in seconds and exports to ONNX in seconds.
"""

from __future__ import annotations

import torch

from slt_training.models.translation import TranslationModel, TranslationOptions
from slt_training.text.mbart import build_mbart, preset
from slt_training.text.tokenizer import TextTokenizer, TokenizerOptions, train_tokenizer

SENTENCES = [
    ("REGEN MORGEN", "morgen regnet es ."),
    ("SONNE SUED HEUTE", "heute scheint im süden die sonne ."),
    ("WIND", "wind ."),
    ("TÔI ĐĂNG-KÝ KHÁM MUỐN", "tôi muốn đăng ký khám ."),
]


def tokenizer() -> TextTokenizer:
    texts = [t for _, t in SENTENCES] * 4
    return train_tokenizer(
        texts, [g.split() for g, _ in SENTENCES], TokenizerOptions(vocab_size=120)
    )


def translation(tok: TextTokenizer, seed: int = 0, **options) -> TranslationModel:
    """A random tiny mBART (seeded) as a `TranslationModel`, in train mode."""
    torch.manual_seed(seed)
    mbart = build_mbart(preset("tiny", dropout=0.0, attention_dropout=0.0), tok)
    return TranslationModel(mbart, TranslationOptions(**options))
