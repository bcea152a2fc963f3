"""Beam search as transformers 4.11.3 does it, the version the reference code pins.

Models trained with the reference (TwoStream-SLT) were scored with 4.11.3's
`generate`; transformers 5 vectorised its beam search and decides when a sentence is
done differently, so a few outputs end at another length. This reproduces 4.11.3:

* each step takes the 2 × `num_beams` best candidates (cumulative log-prob) over all
  beams of a sentence; a candidate ending in EOS and ranked within the first
  `num_beams` becomes a finished hypothesis (the best `num_beams` are kept), scored
  summed log-prob / (tokens before EOS, start included) ** length_penalty; the others
  continue until `num_beams` beams are filled;
* a sentence is done once `num_beams` hypotheses are stored and the worst of them
  scores at least the best candidate's summed log-prob of this step divided by the
  current length ** length_penalty (no early stopping);
* at `max_length - 1` only EOS may follow (`forced_eos_token_id`, counting log-prob 0);
  at `max_length` the open beams are added the same way, and the best hypothesis is
  returned, with EOS appended where it fits.

`ensemble_beam_search` is the same search over several networks (TwoStream-SLT's
`MBart_Ensemble`): each runs its own encoder and decoder cache, and a step's
logits are the log of the sum of their softmax probabilities, which the step's
log-softmax turns into the log of their mean. One network: its own logits.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class Hypotheses:
    """The finished hypotheses of one sentence (4.11.3's `BeamHypotheses`)."""

    num_beams: int
    length_penalty: float
    beams: list[tuple[float, list[int]]] = field(default_factory=list)
    worst: float = 1e9

    def add(self, tokens: list[int], sum_log_probs: float) -> None:
        score = sum_log_probs / (len(tokens) ** self.length_penalty)
        if len(self.beams) < self.num_beams or score > self.worst:
            self.beams.append((score, tokens))
            if len(self.beams) > self.num_beams:
                ranked = sorted((s, i) for i, (s, _) in enumerate(self.beams))
                del self.beams[ranked[0][1]]
                self.worst = ranked[1][0]
            else:
                self.worst = min(score, self.worst)

    def is_done(self, best_sum_log_probs: float, length: int) -> bool:
        if len(self.beams) < self.num_beams:
            return False
        return self.worst >= best_sum_log_probs / length**self.length_penalty

    def best(self) -> list[int]:
        return sorted(self.beams, key=lambda beam: beam[0])[-1][1]


@dataclass(frozen=True)
class SearchSpec:
    """Token ids and limits of one search."""

    start_id: int
    eos_id: int
    pad_id: int
    num_beams: int
    max_length: int
    length_penalty: float = 1.0
    forced_eos_id: int | None = None


def _step_scores(logits: Tensor, length: int, spec: SearchSpec) -> Tensor:
    scores = logits.float().log_softmax(-1)
    if spec.forced_eos_id is not None and length == spec.max_length - 1:
        scores = torch.full_like(scores, float("-inf"))
        scores[:, spec.forced_eos_id] = 0.0
    return scores


def _select(top_scores, top_ids, vocab, ids, hyps, length, spec):
    """One sentence's next beams: (scores, tokens, source beams) and whether it is done."""
    beams, scores, tokens = [], [], []
    for rank in range(top_ids.shape[0]):
        token, beam = int(top_ids[rank]) % vocab, int(top_ids[rank]) // vocab
        score = float(top_scores[rank])
        if token == spec.eos_id:
            if rank < spec.num_beams:
                hyps.add(ids[beam].tolist(), score)
        else:
            beams.append(beam), scores.append(score), tokens.append(token)
        if len(beams) == spec.num_beams:
            break
    return scores, tokens, beams, hyps.is_done(float(top_scores.max()), length)


@torch.no_grad()
def beam_search(mbart, encoder_inputs: dict[str, Tensor], spec: SearchSpec) -> list[list[int]]:
    """Token ids per sentence (start token first) for mBART-like `mbart` given the
    encoder's keyword inputs (with `attention_mask`)."""
    return ensemble_beam_search([(mbart, encoder_inputs)], spec)


def ensemble_logits(logits: list[Tensor]) -> Tensor:
    """The ensemble's step logits: log Σ softmax (the reference's); one network: its logits."""
    if len(logits) == 1:
        return logits[0]
    return torch.stack([x.float().softmax(-1) for x in logits]).sum(0).log()


class _Network:
    """One network's encoder states, source mask and decoder cache during the search."""

    def __init__(self, mbart, encoder_inputs: dict[str, Tensor], nb: int) -> None:
        self.mbart = mbart
        encoder = mbart.get_encoder()(**encoder_inputs)
        self.hidden = encoder.last_hidden_state.repeat_interleave(nb, 0)
        self.mask = encoder_inputs["attention_mask"].repeat_interleave(nb, 0)
        self.past = None
        # transformers ≥ 5.2x names the decoder cache `cache` (`past_key_values` is deprecated)
        params = inspect.signature(mbart.forward).parameters
        self.cache_arg = "cache" if "cache" in params else "past_key_values"

    def step(self, ids: Tensor) -> Tensor:
        step = ids if self.past is None else ids[:, -1:]
        out = self.mbart(encoder_outputs=(self.hidden,), attention_mask=self.mask,
                         decoder_input_ids=step, use_cache=True,
                         **{self.cache_arg: self.past})  # fmt: skip
        self.past = out.past_key_values
        return out.logits[:, -1]


@torch.no_grad()
def ensemble_beam_search(members: list[tuple], spec: SearchSpec) -> list[list[int]]:
    """`beam_search` over several (mbart, encoder inputs) networks on the same sentences."""
    mask = members[0][1]["attention_mask"]
    batch, nb = mask.shape[0], spec.num_beams
    networks = [_Network(mbart, inputs, nb) for mbart, inputs in members]
    ids = torch.full((batch * nb, 1), spec.start_id, dtype=torch.long, device=mask.device)
    beam_scores = torch.zeros(batch, nb, device=mask.device)
    beam_scores[:, 1:] = -1e9
    beam_scores = beam_scores.view(-1)
    hyps = [Hypotheses(nb, spec.length_penalty) for _ in range(batch)]
    done = [False] * batch
    while ids.shape[1] < spec.max_length:
        length = ids.shape[1]
        logits = ensemble_logits([n.step(ids) for n in networks])
        scores = _step_scores(logits, length, spec) + beam_scores[:, None]
        vocab = scores.shape[-1]
        top_scores, top_ids = scores.view(batch, nb * vocab).topk(2 * nb, dim=1)
        next_scores, next_tokens, next_beams = [], [], []
        for b in range(batch):
            if done[b]:
                picked = ([0.0] * nb, [spec.pad_id] * nb, list(range(nb)), True)
            else:
                picked = _select(
                    top_scores[b],
                    top_ids[b],
                    vocab,
                    ids[b * nb : (b + 1) * nb],
                    hyps[b],
                    length,
                    spec,
                )
            done[b] = done[b] or picked[3]
            next_scores += picked[0]
            next_tokens += picked[1]
            next_beams += [b * nb + beam for beam in picked[2]]
        order = torch.tensor(next_beams, device=ids.device)
        ids = torch.cat([ids[order], torch.tensor(next_tokens, device=ids.device)[:, None]], 1)
        beam_scores = torch.tensor(next_scores, device=ids.device)
        for n in networks:
            n.past.reorder_cache(order)
        if all(done):
            break
    return _finalize(ids, beam_scores, hyps, done, spec)


def _finalize(ids, beam_scores, hyps, done, spec) -> list[list[int]]:
    nb, results = spec.num_beams, []
    for b, sentence in enumerate(hyps):
        if not done[b]:
            for beam in range(nb):
                sentence.add(ids[b * nb + beam].tolist(), float(beam_scores[b * nb + beam]))
        best = sentence.best()
        results.append(best + [spec.eos_id] if len(best) < spec.max_length else best)
    return results
