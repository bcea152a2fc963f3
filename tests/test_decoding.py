import itertools
import math
import subprocess
import sys

import jiwer
import numpy as np
import pytest

from slt_serve.decoding import (
    TokenSpan,
    ctc_align,
    ctc_decode,
    ctc_decode_batch,
    ctc_decode_spans,
    ctc_greedy_decode,
    ctc_greedy_spans,
    ctc_prefix_beam_search,
)
from slt_serve.errors import SltError

A, B = 1, 2


def peaked(path, vocab=4, p=0.9):
    """Log-probs putting `p` on each step's symbol of `path` and the rest evenly elsewhere."""
    probs = np.full((len(path), vocab), (1 - p) / (vocab - 1))
    probs[np.arange(len(path)), path] = p
    return np.log(probs)


def collapse(path, blank=0):
    return tuple(s for s, _ in itertools.groupby(path) if s != blank)


def test_repeats_merge_unless_a_blank_separates_them():
    for decode in (ctc_greedy_decode, lambda lp: list(ctc_prefix_beam_search(lp)[0].tokens)):
        assert decode(peaked([A, 0, A])) == [A, A]
        assert decode(peaked([A, A])) == [A]
        assert decode(peaked([0, A, A, 0, B, B, A])) == [A, B, A]


def test_greedy_spans_give_first_and_last_step_of_each_token():
    spans = ctc_greedy_spans(peaked([0, A, A, 0, B, B, B, 0, A]))
    assert spans == [TokenSpan(A, 1, 2), TokenSpan(B, 4, 6), TokenSpan(A, 8, 8)]
    assert ctc_greedy_spans(np.zeros((0, 3))) == []


def test_beam_finds_the_labelling_greedy_misses():
    # Each step: blank 0.6, A 0.4. Best path is blank blank (0.36); but "A" collects
    # A·A + A·blank + blank·A = 0.16 + 0.24 + 0.24 = 0.64.
    lp = np.log([[0.6, 0.4], [0.6, 0.4]])
    assert ctc_greedy_decode(lp) == []
    best, second = ctc_prefix_beam_search(lp, beam_size=5)
    assert best.tokens == (A,) and best.log_prob == pytest.approx(math.log(0.64))
    assert second.tokens == () and second.log_prob == pytest.approx(math.log(0.36))


def brute_force(lp):
    """log P(labelling) summed over every one of the V^T alignments."""
    totals = {}
    for path in itertools.product(range(lp.shape[1]), repeat=lp.shape[0]):
        p = math.exp(sum(lp[t, s] for t, s in enumerate(path)))
        totals[collapse(path)] = totals.get(collapse(path), 0.0) + p
    return {labels: math.log(p) for labels, p in totals.items()}


@pytest.mark.parametrize("seed", range(6))
def test_equals_sum_over_all_alignments(seed):
    rng = np.random.default_rng(seed)
    steps, vocab = int(rng.integers(1, 6)), int(rng.integers(2, 5))
    logits = rng.normal(size=(steps, vocab)) * 2
    lp = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
    exact = brute_force(lp)
    full = ctc_prefix_beam_search(lp, beam_size=10_000)  # nothing pruned
    assert {h.tokens: pytest.approx(h.log_prob) for h in full} == exact
    assert [h.log_prob for h in full] == sorted((h.log_prob for h in full), reverse=True)
    for h in ctc_prefix_beam_search(lp, beam_size=2):  # pruned: never above the truth
        assert h.log_prob <= exact[h.tokens] + 1e-9


def test_beam_of_one_is_greedy_on_peaked_input():
    rng = np.random.default_rng(0)
    for _ in range(100):
        lp = peaked(rng.integers(0, 5, size=int(rng.integers(1, 20))), vocab=5, p=0.9)
        assert list(ctc_prefix_beam_search(lp, beam_size=1)[0].tokens) == ctc_greedy_decode(lp)


def spiky_clip(rng, vocab):
    """A CTC-like output for random true labels: blank-dominated steps, then 1-3 steps
    where the label has probability 0.25-0.95, a distractor a little, blank the rest."""
    labels = rng.integers(1, vocab, size=int(rng.integers(2, 7)))
    rows = []
    for label in labels:
        rows += [{0: 0.9} for _ in range(rng.integers(1, 3))]
        distractor = int(rng.integers(1, vocab))
        for _ in range(rng.integers(1, 4)):
            p = rng.uniform(0.25, 0.95)
            d = 0.0 if distractor == label else rng.uniform(0, 0.3) * (1 - p)
            rows.append({0: 0.8 * (1 - p - d), distractor: d, label: p})  # label wins a tie
    rows.append({0: 0.9})
    probs = np.stack([rng.dirichlet(np.ones(vocab)) * (1 - sum(r.values())) for r in rows])
    for t, row in enumerate(rows):
        for symbol, p in row.items():
            probs[t, symbol] += p
    return " ".join(map(str, labels)), np.log(probs)


def test_beam_wer_is_at_most_greedy_wer_on_random_spiky_clips():
    rng = np.random.default_rng(0)
    truth, greedy, beam = [], [], []
    for _ in range(200):
        labels, lp = spiky_clip(rng, vocab=10)
        truth.append(labels)
        greedy.append(" ".join(map(str, ctc_greedy_decode(lp))))
        beam.append(" ".join(map(str, ctc_prefix_beam_search(lp, beam_size=5)[0].tokens)))
    assert jiwer.wer(truth, beam) <= jiwer.wer(truth, greedy)


def test_batch_respects_lengths():
    rng = np.random.default_rng(0)
    batch = np.log(rng.dirichlet(np.ones(6), size=(3, 12)))
    lengths = np.array([12, 5, 0])
    assert ctc_decode_batch(batch, lengths) == [
        ctc_greedy_decode(batch[0]),
        ctc_greedy_decode(batch[1, :5]),
        [],
    ]
    beams = ctc_decode_batch(batch, lengths, beam_size=3)
    assert beams[1] == list(ctc_prefix_beam_search(batch[1, :5], beam_size=3)[0].tokens)
    assert beams[2] == []
    with pytest.raises(SltError, match="lengths"):
        ctc_decode_batch(batch, np.array([13, 1, 1]))
    with pytest.raises(SltError, match="beam size"):
        ctc_decode_batch(batch, lengths, beam_size=0)


def test_ctc_decode_is_greedy_at_beam_one_and_beam_search_above_with_spans():
    rng = np.random.default_rng(3)
    for _ in range(20):
        _, lp = spiky_clip(rng, vocab=8)
        assert ctc_decode(lp) == ctc_greedy_decode(lp)
        assert ctc_decode_spans(lp) == ctc_greedy_spans(lp)
        beam = list(ctc_prefix_beam_search(lp, beam_size=4)[0].tokens)
        assert ctc_decode(lp, beam_size=4) == beam
        spans = ctc_decode_spans(lp, beam_size=4)
        assert [s.token for s in spans] == beam and spans == ctc_align(lp, beam)
        assert all(a.end < b.start for a, b in zip(spans, spans[1:]))


def test_bad_input_is_an_slt_error():
    with pytest.raises(SltError, match="time, vocabulary"):
        ctc_greedy_decode(np.zeros(5))
    with pytest.raises(SltError, match="blank"):
        ctc_prefix_beam_search(np.zeros((3, 4)), blank=4)
    with pytest.raises(SltError, match="NaN"):
        ctc_greedy_decode(np.full((2, 3), np.nan))
    with pytest.raises(SltError, match="beam size"):
        ctc_prefix_beam_search(np.zeros((3, 4)), beam_size=0)


def test_importing_decoding_does_not_import_torch():
    code = "import sys, slt_serve.decoding; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_aligns_more_glosses_than_an_int8_state_index_holds():
    """200 steps, 80 glosses (161 CTC states): gloss g at step 2g + 1, blanks between."""
    vocab, steps = 9, 200
    tokens = [1 + g % (vocab - 1) for g in range(80)]
    lp = np.full((steps, vocab), -20.0)
    lp[:, 0] = -0.01  # blank elsewhere
    for g, token in enumerate(tokens):
        lp[2 * g + 1] = -20.0
        lp[2 * g + 1, token] = -0.01
    spans = ctc_align(lp, tokens, 0)
    assert [s.token for s in spans] == tokens
    assert [s.start for s in spans] == [2 * g + 1 for g in range(80)]
