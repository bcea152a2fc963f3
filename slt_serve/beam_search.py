"""Beam search over a one-step decoder with a key/value cache, in numpy.

`BeamSettings.search` picks the rule a bundle's model was scored with, so a bundle
translates to the same tokens as `TranslationModel.generate`. "transformers" (our
own runs) reproduces transformers' (5.x) `GenerationMixin._beam_search` with its
defaults for mBART:

* each step keeps the 2·beams best continuations of all beams (scores are summed
  token log-probs); those ending in EOS, or reaching `max_length`, are candidates
  for the finished list (only among the first `beams` of them), scored
  `sum / generated_length ** length_penalty` (the length counts EOS, not the
  start token); the best `beams` unfinished continuations run on;
* at the last position only EOS is allowed (mBART's `forced_eos_token_id`);
* it stops when every beam of every source is finished and the best running
  score, normalised by the current length, cannot beat the worst finished one
  (`early_stopping=False`), or at `max_length`.

"reference" reproduces transformers 4.11.3's `BeamSearchScorer`, the version the
reference code (TwoStream-SLT) pins, for models imported from it
(`slt_training.models.beam_search` is the same rule in PyTorch). Where it differs:

* only candidates ending in EOS are finished during the search; a source is done
  once `beams` hypotheses are finished and the worst of them scores at least the
  best candidate of this step (EOS ones included, not only the best running beam),
  normalised by the current length (`length ** length_penalty`, start token included);
* at `max_length` the beams still running are added to the finished ones, scored
  by their full length (start token included), and returned without EOS. With
  `forced_eos` they can only lose (their last token was not EOS: log-prob −inf).

Greedy search (`num_beams` 1) is the same under both rules.

`step(tokens, past_keys, past_values)` runs the decoder on the last token of each
hypothesis (N = sources × beams) and returns (logits (N, V), keys, values) with
that step appended; the cache is reordered by beam: `Layers` (one (N, heads, steps,
head_dim) array a layer) along axis 0, a stacked array (layers, N, …) along axis 1,
and not at all on a step where every hypothesis continues itself (greedy search). An ensemble's
step (`slt_serve.seq2seq.Ensemble`) passes lists of caches, one per network, each
reordered the same way, and returns `mean_probability_logits` of its networks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from slt_serve.errors import SltError

NEG = np.float32(-1.0e9)  # transformers' "very large negative" for excluded beams
SEARCHES = ("transformers", "reference")  # BeamSettings.search, see the module docstring

Step = Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class BeamSettings:
    """Generation settings, as the manifest stores them."""

    num_beams: int = 5
    length_penalty: float = 1.0
    max_length: int = 100  # tokens including the decoder start token
    decoder_start_id: int = 0
    eos_id: int = 2
    pad_id: int = 1
    forced_eos: bool = True  # only EOS at the last position (mBART's forced_eos_token_id)
    search: str = "transformers"  # the rule, one of SEARCHES (module docstring)

    def __post_init__(self) -> None:
        if self.num_beams < 1:
            raise SltError(f"beam size must be at least 1, got {self.num_beams}")
        if self.max_length < 2:
            raise SltError(f"max_length must be at least 2, got {self.max_length}")
        if self.search not in SEARCHES:
            raise SltError(f"search must be one of {SEARCHES}, got {self.search!r}")

    @property
    def reference(self) -> bool:
        return self.search == "reference"


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float32, copy=False)
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def mean_probability_logits(logits: list[np.ndarray]) -> np.ndarray:
    """An ensemble's next-token scores: the log of its networks' softmax probabilities
    averaged (TwoStream-SLT's `MBart_Ensemble`: log of their sum, which the search's
    log-softmax turns into the log of the mean). One network: its logits, untouched."""
    if len(logits) == 1:
        return logits[0]
    probs = sum(np.exp(log_softmax(x)) for x in logits) / np.float32(len(logits))
    with np.errstate(divide="ignore"):  # a token no network allows stays at -inf
        return np.log(probs).astype(np.float32, copy=False)


class Layers(list):
    """A cache of one (N, heads, steps, head_dim) array a decoder layer."""


def reorder(cache, flat: np.ndarray):
    """A cache with hypotheses `flat`: `Layers` along axis 0, a stacked array along axis 1,
    a plain list (an ensemble's, one cache a network) each."""
    if isinstance(cache, np.ndarray):
        return cache[:, flat]
    if isinstance(cache, Layers):
        return Layers(layer[flat] for layer in cache)
    return [reorder(c, flat) for c in cache]


def _topk(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest of each row, largest first (equal scores: lower index first)."""
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.lexsort((part, -np.take_along_axis(scores, part, axis=1)), axis=1)
    return np.take_along_axis(part, order, axis=1)


@dataclass
class _Beams:
    """The search's arrays for B sources × nb beams (one call's own, never shared)."""

    running: np.ndarray  # (B, nb, max_len) token ids of the beams that run on
    running_scores: np.ndarray  # (B, nb) summed log-probs
    finished_seqs: np.ndarray  # (B, nb, max_len) the best finished hypotheses
    finished_lens: np.ndarray  # (B, nb) their lengths, start token included
    finished_scores: np.ndarray  # (B, nb) length-normalised; NEG where none yet
    finished_sums: np.ndarray  # (B, nb) their summed log-probs
    is_finished: np.ndarray  # (B, nb) a finished slot holds a real hypothesis
    improvable: np.ndarray  # (B, 1) a running beam may still beat the worst finished one

    @classmethod
    def start(cls, b: int, s: BeamSettings) -> _Beams:
        nb = s.num_beams
        running = np.full((b, nb, s.max_length), s.pad_id, dtype=np.int64)
        running[:, :, 0] = s.decoder_start_id
        running_scores = np.zeros((b, nb), dtype=np.float32)
        running_scores[:, 1:] = NEG  # only the first beam expands at step 1
        return cls(
            running=running,
            running_scores=running_scores,
            finished_seqs=running.copy(),
            finished_lens=np.ones((b, nb), dtype=np.int64),
            finished_scores=np.full((b, nb), NEG, dtype=np.float32),
            finished_sums=np.zeros((b, nb), dtype=np.float32),
            is_finished=np.zeros((b, nb), dtype=bool),
            improvable=np.ones((b, 1), dtype=bool),
        )


def beam_search(
    step: Step, num_sources: int, empty_cache: tuple[np.ndarray, np.ndarray], s: BeamSettings
) -> list[list[int]]:
    """The best token sequence of each source (start token first, EOS last when it ended).

    `empty_cache`: (keys, values) with N = num_sources × num_beams hypotheses and 0 steps.
    """
    return [tokens for tokens, _ in beam_search_scored(step, num_sources, empty_cache, s)]


def beam_search_scored(
    step: Step, num_sources: int, empty_cache: tuple[np.ndarray, np.ndarray], s: BeamSettings
) -> list[tuple[list[int], float]]:
    """`beam_search`'s sequences, each with its mean token log-probability (the tokens after
    the start token, EOS included: the summed score ÷ that length, whatever the length
    penalty the search ranked with)."""
    b, nb = num_sources, s.num_beams
    beams = _Beams.start(b, s)
    keys, values = empty_cache
    offsets = (np.arange(b) * nb)[:, None]
    same = np.arange(b * nb)
    cur = 1
    while True:
        logits, keys, values = step(beams.running[:, :, cur - 1].reshape(-1, 1), keys, values)
        cand, cand_scores, origin, ends = _candidates(beams, logits, cur, s)
        origin = _run_on(beams, cand, cand_scores, origin, ends, nb)
        just = ends & (np.arange(2 * nb) < nb)[None, :]  # among the first `beams` only
        _finish(beams, cand, cand_scores, just, cur, cur + 1, s)
        flat = (origin + offsets).reshape(-1)  # the cache follows the beams that run on
        if (flat != same).any():
            keys, values = reorder(keys, flat), reorder(values, flat)
        # 4.11.3 bounds by the best candidate (EOS ones too), 5.x by the best running beam
        best = cand_scores[:, :1] if s.reference else beams.running_scores[:, :1]
        best = best / np.float32(float(cur) ** s.length_penalty)
        worst = np.where(beams.is_finished, beams.finished_scores.min(axis=1, keepdims=True), NEG)
        beams.improvable &= (best > worst).any(axis=1, keepdims=True)
        cur += 1
        if not beams.improvable.any() or ends.all() or cur >= s.max_length:
            break
    if s.reference and cur >= s.max_length:  # 4.11.3 adds the open beams, full length
        running = np.ones(beams.running_scores.shape, dtype=bool)
        _finish(beams, beams.running, beams.running_scores, running, cur, cur, s)
    generated = (beams.finished_lens[:, 0] - 1).astype(np.float64)  # EOS counted, start not
    means = beams.finished_sums[:, 0] / generated
    return [
        (beams.finished_seqs[i, 0, : beams.finished_lens[i, 0]].tolist(), float(means[i]))
        for i in range(b)
    ]


def _candidates(beams: _Beams, logits: np.ndarray, cur: int, s: BeamSettings):
    """The 2·beams best continuations of each source: (sequences, scores, beam, ended)."""
    b, nb = beams.running_scores.shape
    logp = log_softmax(logits)
    vocab = logp.shape[-1]
    if s.forced_eos and cur == s.max_length - 1:
        logp = np.full_like(logp, -np.inf)
        logp[:, s.eos_id] = 0.0
    total = (logp.reshape(b, nb, vocab) + beams.running_scores[:, :, None]).reshape(b, nb * vocab)
    idx = _topk(total, 2 * nb)  # (1 + number of EOS ids) × beams
    cand_scores = np.take_along_axis(total, idx, axis=1)
    origin, tokens = idx // vocab, idx % vocab
    cand = np.take_along_axis(beams.running, origin[:, :, None], axis=1)
    cand[:, :, cur] = tokens
    ends = tokens == s.eos_id
    if not s.reference:  # 5.x: every candidate of the last position is finished
        ends |= cur + 1 >= s.max_length
    return cand, cand_scores, origin, ends


def _run_on(beams: _Beams, cand, cand_scores, origin, ends, nb: int) -> np.ndarray:
    """Keep the best `nb` candidates that did not end as the running beams; their origins."""
    run_scores = cand_scores + ends.astype(np.float32) * NEG
    nxt = _topk(run_scores, nb)
    beams.running = np.take_along_axis(cand, nxt[:, :, None], axis=1)
    beams.running_scores = np.take_along_axis(run_scores, nxt, axis=1)
    return np.take_along_axis(origin, nxt, axis=1)


def _finish(beams: _Beams, seqs, sums, just, length: int, seq_len: int, s: BeamSettings) -> None:
    """Merge the sequences marked `just` (finished now, `seq_len` tokens each) into the
    finished list, scored `sums / length ** length_penalty`; sources no longer
    improvable take none."""
    nb = s.num_beams
    scored = sums / np.float32(float(length) ** s.length_penalty)
    scored = scored + (~beams.improvable).astype(np.float32) * NEG
    scored = scored + (~just).astype(np.float32) * NEG
    merged_scores = np.concatenate([beams.finished_scores, scored], axis=1)
    best = _topk(merged_scores, nb)
    beams.finished_scores = np.take_along_axis(merged_scores, best, axis=1)
    merged_sums = np.concatenate([beams.finished_sums, sums], axis=1)
    beams.finished_sums = np.take_along_axis(merged_sums, best, axis=1)
    merged_seqs = np.concatenate([beams.finished_seqs, seqs], axis=1)
    beams.finished_seqs = np.take_along_axis(merged_seqs, best[:, :, None], axis=1)
    lens = np.concatenate([beams.finished_lens, np.full(just.shape, seq_len)], axis=1)
    beams.finished_lens = np.take_along_axis(lens, best, axis=1)
    merged = np.concatenate([beams.is_finished, just], axis=1)
    beams.is_finished = np.take_along_axis(merged, best, axis=1)
