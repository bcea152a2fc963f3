"""Scores the field reports for sign language translation: gloss WER, BLEU-1..4, ROUGE-L.

Computed as TwoStream-SLT's evaluation does, so that our numbers compare with
published ones: WER on whitespace glosses with jiwer (after the PHOENIX gloss
clean-up where asked), BLEU with sacrebleu on lowercased text without further
tokenisation, ROUGE-L as the mean of sentence-level F1 on whitespace tokens;
Chinese is split into characters first.
"""

from __future__ import annotations

import logging

import jiwer

from slt_serve.errors import SltError

logger = logging.getLogger(__name__)


def _check_pairs(hyps: list[str], refs: list[str]) -> None:
    """Refuse input that cannot be scored, with a message that says what to fix."""
    if len(hyps) != len(refs):
        raise SltError(
            f"{len(hyps)} hypotheses but {len(refs)} references; "
            "give exactly one hypothesis per reference, in the same order"
        )
    if not refs:
        raise SltError("no sentences to score; give at least one hypothesis/reference pair")


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
