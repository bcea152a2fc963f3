"""CTC decoding of gloss log-probabilities, in numpy (serving has no torch).

`ctc_decode` (and `ctc_decode_spans`, `ctc_decode_batch`) is the one place where the
choice between greedy decoding (`beam_size` 1) and prefix beam search is made; the
translator, the export's parity check and training's evaluation all call it.

Input is a (T, V) matrix of per-step log-probabilities (log-softmax over the gloss
vocabulary, blank included), as the S2G model emits. Greedy decoding takes the best
symbol per step, merges repeats and drops blanks; prefix beam search sums the
probability of every alignment of a labelling (blank- and non-blank-ending paths
kept apart, so "A blank A" and "A A" stay different) and keeps the `beam_size` most
probable prefixes at each step. TwoStream-SLT uses beam 5 at test time.

Frame indices are steps of the log-prob matrix: with the 4-block S3D a step covers
4 video frames.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from slt_serve.errors import SltError

NEG_INF = -np.inf


@dataclass(frozen=True)
class Hypothesis:
    """A labelling and the log of its probability summed over the alignments kept."""

    tokens: tuple[int, ...]  # token ids, blanks removed and repeats merged
    log_prob: float  # exact when no prefix was pruned, a lower bound otherwise


@dataclass(frozen=True)
class TokenSpan:
    """One emitted token of greedy decoding and the steps it was read from."""

    token: int  # token id
    start: int  # first step (inclusive) where it is the best symbol
    end: int  # last step (inclusive) of that run


def _checked(log_probs: np.ndarray, blank: int) -> np.ndarray:
    lp = np.asarray(log_probs)
    if lp.ndim != 2 or lp.shape[1] < 1:
        raise SltError(f"CTC log-probs must be (time, vocabulary), got shape {lp.shape}")
    if not 0 <= blank < lp.shape[1]:
        raise SltError(f"CTC blank id {blank} is outside the vocabulary of {lp.shape[1]}")
    if np.isnan(lp).any():
        raise SltError("CTC log-probs contain NaN; the model output is broken")
    return lp


def ctc_greedy_spans(log_probs: np.ndarray, blank: int = 0) -> list[TokenSpan]:
    """Best symbol per step, repeats merged, blanks dropped; each token with its steps."""
    best = np.argmax(_checked(log_probs, blank), axis=1)
    if best.size == 0:
        return []
    starts = np.flatnonzero(np.r_[True, best[1:] != best[:-1]])
    ends = np.r_[starts[1:] - 1, best.size - 1]
    keep = best[starts] != blank
    return [
        TokenSpan(int(best[s]), int(s), int(e))
        for s, e in zip(starts[keep], ends[keep], strict=True)
    ]


def ctc_greedy_decode(log_probs: np.ndarray, blank: int = 0) -> list[int]:
    """Token ids of the greedy (best path) decoding."""
    return [span.token for span in ctc_greedy_spans(log_probs, blank)]


def ctc_prefix_beam_search(
    log_probs: np.ndarray, beam_size: int = 5, blank: int = 0
) -> list[Hypothesis]:
    """CTC prefix beam search; the surviving hypotheses, most probable first."""
    if beam_size < 1:
        raise SltError(f"beam size must be at least 1, got {beam_size}")
    lp = _checked(log_probs, blank).astype(np.float64)
    beam = _Beam([()], np.zeros(1), np.full(1, NEG_INF))
    for frame in lp:
        beam = _step(beam, frame, beam_size, blank)
    total = np.logaddexp(beam.blank, beam.nonblank)
    order = np.argsort(-total, kind="stable")
    return [Hypothesis(beam.prefixes[i], float(total[i])) for i in order]


@dataclass(frozen=True)
class _Beam:
    prefixes: list[tuple[int, ...]]
    blank: np.ndarray  # log P(prefix, path ends in blank)
    nonblank: np.ndarray  # log P(prefix, path ends in the prefix's last token)


def _step(beam: _Beam, frame: np.ndarray, beam_size: int, blank: int) -> _Beam:
    """Advance every prefix by one step and keep the `beam_size` most probable."""
    n, vocab = len(beam.prefixes), frame.size
    total = np.logaddexp(beam.blank, beam.nonblank)
    last = np.array([p[-1] if p else -1 for p in beam.prefixes])
    rows = np.flatnonzero(last >= 0)
    # Same prefix: a blank, or the last token again with no blank in between.
    stay_blank = total + frame[blank]
    stay_nonblank = np.full(n, NEG_INF)
    stay_nonblank[rows] = beam.nonblank[rows] + frame[last[rows]]
    # Prefix + token c; repeating the last token needs a blank before it.
    extend = total[:, None] + frame[None, :]
    extend[:, blank] = NEG_INF
    extend[rows, last[rows]] = beam.blank[rows] + frame[last[rows]]
    _merge_extensions_already_in_beam(beam.prefixes, extend, stay_nonblank)
    scores = np.concatenate([np.logaddexp(stay_blank, stay_nonblank), extend.ravel()])
    top = np.argpartition(-scores, min(beam_size, scores.size) - 1)[:beam_size]
    top = top[np.isfinite(scores[top])]
    if top.size == 0:  # every path has probability 0 (a frame of -inf): keep the beam
        top = np.arange(n)
    prefixes, blank_lp, nonblank_lp = [], [], []
    for j in top:
        if j < n:
            prefixes.append(beam.prefixes[j])
            blank_lp.append(stay_blank[j])
            nonblank_lp.append(stay_nonblank[j])
        else:
            i, token = divmod(int(j) - n, vocab)
            prefixes.append(beam.prefixes[i] + (token,))
            blank_lp.append(NEG_INF)
            nonblank_lp.append(extend[i, token])
    return _Beam(prefixes, np.array(blank_lp), np.array(nonblank_lp))


def _merge_extensions_already_in_beam(
    prefixes: list[tuple[int, ...]], extend: np.ndarray, stay_nonblank: np.ndarray
) -> None:
    """Where parent + token is itself in the beam, add that extension to it (in place)."""
    index = {p: i for i, p in enumerate(prefixes)}
    for i, prefix in enumerate(prefixes):
        parent = index.get(prefix[:-1]) if prefix else None
        if parent is not None:
            stay_nonblank[i] = np.logaddexp(stay_nonblank[i], extend[parent, prefix[-1]])
            extend[parent, prefix[-1]] = NEG_INF


def ctc_decode(log_probs: np.ndarray, beam_size: int = 1, blank: int = 0) -> list[int]:
    """Token ids: best path for `beam_size` 1, the best hypothesis of prefix beam search above."""
    if beam_size == 1:
        return ctc_greedy_decode(log_probs, blank)
    hyps = ctc_prefix_beam_search(log_probs, beam_size, blank)
    return list(hyps[0].tokens) if hyps else []


def ctc_decode_spans(log_probs: np.ndarray, beam_size: int = 1, blank: int = 0) -> list[TokenSpan]:
    """`ctc_decode`'s tokens, each with the steps it was signed: the greedy runs for
    `beam_size` 1, the best (Viterbi) alignment of the beam's labelling above."""
    if beam_size == 1:
        return ctc_greedy_spans(log_probs, blank)
    return ctc_align(log_probs, ctc_decode(log_probs, beam_size, blank), blank)


def ctc_align(log_probs: np.ndarray, tokens: Sequence[int], blank: int = 0) -> list[TokenSpan]:
    """One span per token of `tokens` on the (T, V) log-prob matrix, in order.

    The single most probable path that emits exactly `tokens` (blanks optional
    between different tokens, required between repeats); per token, the first and
    last step the path spends on it. Greedy decoding gets its spans for free; prefix
    beam search returns only a labelling, so its spans come from here.
    """
    lp = np.asarray(log_probs, dtype=np.float64)
    tokens = list(tokens)
    if not tokens:
        return []
    path = _viterbi_path(lp, tokens, blank)
    spans = []
    for i, token in enumerate(tokens):
        where = np.flatnonzero(path == 2 * i + 1)
        spans.append(TokenSpan(int(token), int(where[0]), int(where[-1])))
    return spans


def _viterbi_path(lp: np.ndarray, tokens: list[int], blank: int) -> np.ndarray:
    """The state (index into blank-interleaved `tokens`) of each step on the best path."""
    steps = lp.shape[0]
    ext = np.full(2 * len(tokens) + 1, blank, dtype=np.int64)
    ext[1::2] = tokens
    states = ext.size
    # a jump over a blank (s-2 → s) is allowed into a token that differs from the one before
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
        state -= int(back[t, state])  # int8: state itself may pass 127
    return path


def _sequences(log_probs: np.ndarray, lengths: np.ndarray | None) -> Iterator[np.ndarray]:
    lp = np.asarray(log_probs)
    if lp.ndim != 3:
        raise SltError(f"batched CTC log-probs must be (batch, time, vocabulary), got {lp.shape}")
    if lengths is None:
        lengths = np.full(lp.shape[0], lp.shape[1])
    lengths = np.asarray(lengths)
    if lengths.shape != (lp.shape[0],) or (lengths < 0).any() or (lengths > lp.shape[1]).any():
        raise SltError(f"lengths must be {lp.shape[0]} values in 0..{lp.shape[1]}, got {lengths}")
    for seq, length in zip(lp, lengths, strict=True):
        yield seq[: int(length)]


def ctc_decode_batch(
    log_probs: np.ndarray, lengths: np.ndarray | None = None, beam_size: int = 1, blank: int = 0
) -> list[list[int]]:
    """`ctc_decode` of each row of a padded (B, T, V) batch, cut to its length."""
    if beam_size < 1:
        raise SltError(f"beam size must be at least 1, got {beam_size}")
    return [ctc_decode(seq, beam_size, blank) for seq in _sequences(log_probs, lengths)]
