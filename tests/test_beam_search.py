"""`slt_serve.beam_search`: the cache follows its beams in either layout a decoder takes."""

from __future__ import annotations

import numpy as np

from slt_serve.beam_search import BeamSettings, Layers, beam_search

VOCAB, SOURCES, BEAMS = 11, 2, 4


def _history_step(layout: str):
    """A decoder whose next-token logits depend on every token so far, which it reads only
    from its cache: a cache that does not follow its beam gives other tokens."""
    table = np.random.default_rng(1).normal(0, 2, (97, VOCAB)).astype(np.float32)

    def step(tokens, keys, values):
        token = tokens[:, :1].astype(np.float32)[:, None, :, None]  # (N, 1, 1, 1)
        if layout == "stacked":  # (layers, N, heads, steps, head_dim)
            keys = np.concatenate([keys, np.broadcast_to(token, (2, *token.shape))], axis=3)
            history = keys[0, :, 0, :, 0]
        else:  # Layers: (N, heads, steps, head_dim) each
            keys = Layers(np.concatenate([k, token], axis=2) for k in keys)
            history = keys[1][:, 0, :, 0]
        weights = np.arange(1, history.shape[1] + 1) ** 2
        return table[(history @ weights).astype(np.int64) % 97], keys, values

    return step


def test_layers_and_stacked_caches_follow_their_beams_alike():
    n = SOURCES * BEAMS
    stacked = np.zeros((2, n, 1, 0, 1), dtype=np.float32)
    layers = Layers([np.zeros((n, 1, 0, 1), dtype=np.float32)] * 2)
    for beams in (BEAMS, 1):
        s = BeamSettings(beams, 1.0, 9, decoder_start_id=0, eos_id=2, pad_id=1)
        n = SOURCES * beams
        want = beam_search(_history_step("stacked"), SOURCES, (stacked[:, :n], stacked[:, :n]), s)
        got = beam_search(_history_step("layers"), SOURCES, (Layers(x[:n] for x in layers),) * 2, s)
        assert got == want
        assert all(len(tokens) > 3 for tokens in want)  # the cache mattered for several steps
