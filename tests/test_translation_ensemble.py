"""Translation ensembles (TwoStream-SLT's multi-source ensemble): several networks, one
beam search on their averaged next-token probabilities, in PyTorch
(`TranslationEnsemble`) and in a bundle (`Translation.ensemble`, `seq2seq.Ensemble`)."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import tiny_bundles as tb
import tiny_mbart
import torch

from slt_export.bundle import ExportOptions, RecognitionPart, TranslationPart, export_bundle
from slt_serve.beam_search import mean_probability_logits
from slt_serve.bundle import MANIFEST, load_bundle
from slt_serve.errors import SltError
from slt_serve.seq2seq import Ensemble, Seq2Seq
from slt_serve.translator import TranslateOptions, Translator
from slt_training.models.beam_search import ensemble_logits
from slt_training.models.recognition import TwoStreamRecognizer
from slt_training.models.translation import GenerateOptions
from slt_training.models.translation_ensemble import TranslationEnsemble

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

SPEC = dict(tb.SPEC, keypoints=list(tb.KEYPOINTS))

REFERENCE = GenerateOptions(num_beams=3, length_penalty=1.0, max_length=12, search="reference")
GREEDY = GenerateOptions(num_beams=1, length_penalty=1.0, max_length=12, search="reference")
# the three S2T networks read the recogniser's translation heads (joint, rgb, keypoint
# features, as an imported TwoStream-SLT ensemble), each head's 64 columns
STREAMS = ("joint", "rgb", "keypoint")
FEATURE_DIMS = (tb.HIDDEN,) * len(STREAMS)


def _lively(model, seed: int):
    """`model` with larger random weights and an EOS bias: a freshly initialised tiny mBART
    repeats one token whatever its seed, these differ from seed to seed and end at
    various lengths, so an ensemble's tokens can differ from each network's."""
    g = torch.Generator().manual_seed(100 + seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
        model.mbart.final_logits_bias[0, model.eos_id] = 3.0
    return model.eval()


def _model(tok, seed: int, **options):
    return _lively(tiny_mbart.translation(tok, seed, **options), seed)


def _g2t_models(tok, seeds=(0, 1, 2)):
    return [_model(tok, seed, input="gloss") for seed in seeds]


def _sources(tok, count=6):
    rng = np.random.default_rng(3)
    ids = np.arange(4, len(tok))
    ids = ids[ids != tok.lang_id]
    return [
        [*rng.choice(ids, n).tolist(), tok.eos_id, tok.lang_id]
        for n in rng.integers(2, 9, count).tolist()
    ]


@pytest.fixture(scope="module")
def s2t3(tmp_path_factory):
    tok = tb.tokenizer()
    base = tb.two_stream()
    torch.manual_seed(4)
    options = replace(base.options, translation_heads=STREAMS)
    recognizer = TwoStreamRecognizer(options, len(tb.vocab())).eval()
    models = [
        _model(tok, seed, input="features", feature_dim=dim)
        for seed, dim in zip((4, 5, 6), FEATURE_DIMS)
    ]
    result = export_bundle(
        tmp_path_factory.mktemp("e") / "s2t3",
        RecognitionPart(recognizer, SPEC, tb.vocab(), fps=tb.FPS, ctc_beam_size=1),
        TranslationPart(models[0], tok, REFERENCE, ensemble=tuple(models[1:])),
        ExportOptions(window_check=False),  # the ensemble is what is tested here
    )
    return result, recognizer, models, tok


def test_step_scores_are_the_log_of_the_mean_probability():
    g = torch.Generator().manual_seed(0)
    logits = [torch.randn(4, 11, generator=g) * 3 for _ in range(3)]
    logits[1][:, 5] = float("-inf")  # a token one network forbids still counts for the others
    want = torch.stack([x.softmax(-1) for x in logits]).mean(0).log()
    got_torch = ensemble_logits(logits).log_softmax(-1)  # the search's log-softmax
    got_numpy = mean_probability_logits([x.numpy() for x in logits])
    assert torch.allclose(got_torch, want, atol=1e-6)
    assert np.allclose(got_numpy, want.numpy(), atol=1e-6)
    assert ensemble_logits(logits[:1]) is logits[0]  # one network: its logits, untouched


def test_an_ensemble_of_one_network_is_that_network():
    tok = tb.tokenizer()
    model = _g2t_models(tok, seeds=(0,))[0]
    ensemble = TranslationEnsemble([model])
    for ids in _sources(tok, 3):
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        for options in (REFERENCE, GREEDY):
            assert torch.equal(
                ensemble.generate(mask, options, input_ids=x),
                model.generate(mask, options, input_ids=x),
            )


def test_two_copies_of_a_network_search_like_the_network():
    """Averaging equal probabilities changes nothing (summing log-probs would: the
    length-normalised ranking of finished hypotheses would move)."""
    tok = tb.tokenizer()
    model = _g2t_models(tok, seeds=(1,))[0]
    twice = TranslationEnsemble([model, model])
    for ids in _sources(tok, 4):
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        want = model.generate(mask, REFERENCE, input_ids=x)
        assert torch.equal(twice.generate(mask, REFERENCE, input_ids=x), want)


def test_s2t_ensemble_bundle_gives_the_pytorch_ensemble_tokens(s2t3):
    result, recognizer, models, tok = s2t3
    m = load_bundle(result.path).manifest
    assert [(e.encoder, e.decoder) for e in m.translation.ensemble] == [
        ("encoder.1.onnx", "decoder.1.onnx"),
        ("encoder.2.onnx", "decoder.2.onnx"),
    ]
    assert m.translation.feature_dim == FEATURE_DIMS[0]
    assert [e.feature_dim for e in m.translation.ensemble] == list(FEATURE_DIMS[1:])
    assert m.recognition.feature_dim == sum(FEATURE_DIMS)
    assert m.parity.translation.same_tokens == m.parity.translation.sources
    translator = Translator.from_bundle(result.path, TranslateOptions(device="cpu"))
    assert isinstance(translator.seq2seq, Ensemble) and len(translator.seq2seq.networks) == 3
    ensemble = TranslationEnsemble(models)
    for seed in (0, 1):  # video → s2g's translation heads → each network's columns → text
        frames, points = tb.random_video(16 + 8 * seed, seed=seed), _keypoints(16 + 8 * seed, seed)
        features = _torch_features(recognizer, frames, points[:, list(tb.KEYPOINTS)])
        mask = torch.ones(features.shape[:2], dtype=torch.long)
        want = ensemble.generate(mask, REFERENCE, features=features)[0].tolist()
        got = translator.translate_frames(frames, tb.FPS, keypoints=points)
        assert got.text == tok.decode(want)
    rng = np.random.default_rng(0)
    differs_from_first = 0
    for steps in (3, 5, 7, 9):
        source = rng.standard_normal((1, steps, sum(FEATURE_DIMS))).astype(np.float32)
        x, mask = torch.from_numpy(source), torch.ones(1, steps, dtype=torch.long)
        for options in (REFERENCE, GREEDY):
            want = ensemble.generate(mask, options, features=x)[0].tolist()
            settings = m.generation.beam_settings(options.num_beams)
            got = translator.seq2seq.generate(source, mask.numpy(), settings)[0]
            assert got == want
            first = models[0].generate(mask, options, features=x[..., : FEATURE_DIMS[0]])
            differs_from_first += got != first[0].tolist()
    assert differs_from_first  # the other networks do change the translation


def _keypoints(frames: int, seed: int) -> np.ndarray:
    """(T, 133, 3) random keypoints in frame pixels."""
    rng = np.random.default_rng(seed)
    points = np.zeros((frames, 133, 3), dtype=np.float32)
    points[..., :2] = rng.uniform(0, tb.SIZE, (frames, 133, 2))
    points[..., 2] = rng.uniform(0.2, 1.0, (frames, 133))
    return points


def _torch_features(recognizer, frames, keypoints):
    from slt_training.data.s2g_data import ClipOptions, crop_resize, to_input

    options = ClipOptions(frame_size=tb.SIZE, input_size=tb.SIZE, motion_channels=True)
    x = to_input(crop_resize(frames, (0.0, 0.0, tb.SIZE, tb.SIZE), tb.SIZE), options)[None]
    with torch.no_grad():
        out = recognizer(x, torch.as_tensor(keypoints)[None], torch.tensor([x.shape[2]]))
    return out.gloss_features


def test_a_one_network_manifest_has_no_ensemble_key(single):
    result = single[0]
    data = json.loads((result.path / MANIFEST).read_text())
    assert "ensemble" not in data["translation"]
    translator = Translator.from_bundle(result.path, TranslateOptions(device="cpu"))
    assert type(translator.seq2seq) is Seq2Seq


def test_ensemble_export_refusals(tmp_path):
    tok = tb.tokenizer()
    models = _g2t_models(tok, seeds=(0, 1))
    with pytest.raises(SltError, match="4.11.3's rule"):
        part = TranslationPart(models[0], tok, tb.GENERATION, ensemble=(models[1],))
        export_bundle(tmp_path / "a", None, part, ExportOptions())
    other = tiny_mbart.translation(tok, 7, input="features", feature_dim=8).eval()
    with pytest.raises(SltError, match="ensemble network 1"):
        TranslationEnsemble([models[0], other])
    with pytest.raises(SltError, match="4.11.3"):
        TranslationEnsemble(models[:2]).generate(
            torch.ones(1, 3, dtype=torch.long), tb.GENERATION, input_ids=torch.tensor([[5, 6, 2]])
        )
    with pytest.raises(SltError, match="64 \\+ 64 \\+ 64"):
        feats = [
            tiny_mbart.translation(tok, 0, input="features", feature_dim=d) for d in FEATURE_DIMS
        ]
        TranslationEnsemble(feats).split(torch.zeros(1, 3, 10))
