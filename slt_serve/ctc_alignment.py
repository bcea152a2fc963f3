"""Where each decoded gloss was signed: the best CTC alignment of a gloss sequence (Viterbi).

Greedy CTC decoding gives spans for free (`decoding.ctc_greedy_spans`), but the
prefix beam search returns only a labelling. This finds the single most
probable path that emits exactly that labelling (blanks optional between
different glosses, required between repeats) and reports, per gloss, the
first and last step the path spends on it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from slt_serve.decoding import TokenSpan
from slt_serve.errors import SltError

NEG_INF = -np.inf


def ctc_align(log_probs: np.ndarray, tokens: Sequence[int], blank: int = 0) -> list[TokenSpan]:
    """One span per token of `tokens` on the (T, V) log-prob matrix, in order."""
    lp = np.asarray(log_probs, dtype=np.float64)
    tokens = list(tokens)
    if not tokens:
        return []
    steps = lp.shape[0]
    ext = np.full(2 * len(tokens) + 1, blank, dtype=np.int64)
    ext[1::2] = tokens
    states = ext.size
    # a jump over a blank (s-2 → s) is allowed into a gloss that differs from the one before
    skip = np.zeros(states, dtype=bool)
    skip[3::2] = ext[3::2] != ext[1:-2:2]
    score = np.full(states, NEG_INF)
    score[0] = lp[0, ext[0]]
    score[1] = lp[0, ext[1]]
    back = np.zeros((steps, states), dtype=np.int8)  # 0 stay, 1 from s-1, 2 from s-2
    for t in range(1, steps):
        from1 = np.r_[NEG_INF, score[:-1]]
        from2 = np.where(skip, np.r_[NEG_INF, NEG_INF, score[:-2]], NEG_INF)
        options = np.stack([score, from1, from2])
        back[t] = options.argmax(axis=0)
        score = options.max(axis=0) + lp[t, ext]
    last = states - 1 if score[-1] >= score[-2] else states - 2
    if not np.isfinite(score[last]):
        raise SltError(
            f"{len(tokens)} glosses cannot be aligned to {steps} steps; the decoding is inconsistent"
        )
    path = np.empty(steps, dtype=np.int64)
    state = last
    for t in range(steps - 1, -1, -1):
        path[t] = state
        state -= back[t, state]
    spans = []
    for i, token in enumerate(tokens):
        where = np.flatnonzero(path == 2 * i + 1)
        spans.append(TokenSpan(int(token), int(where[0]), int(where[-1])))
    return spans
