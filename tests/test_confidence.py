"""`slt_serve.confidence`: gloss and translation confidence, calibration, the low_confidence flag."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from slt_serve import sample_model
from slt_serve.beam_search import BeamSettings, beam_search, beam_search_scored, log_softmax
from slt_serve.confidence import (
    DEFAULT_THRESHOLDS,
    ReviewList,
    aligned_correct,
    apply_curve,
    calibrate,
    fit_threshold,
    gloss_confidences,
    isotonic,
    isotonic_curve,
    reliability,
    same_text,
    sentence_confidence,
)
from slt_serve.decoding import TokenSpan, ctc_greedy_spans
from slt_serve.errors import SltError
from slt_serve.translator import GlossSpan, Result, Translator


def _log_probs(rows):
    p = np.asarray(rows, dtype=np.float64)
    return np.log(p / p.sum(axis=1, keepdims=True))


def test_gloss_confidence_is_the_posterior_averaged_over_the_span():
    lp = _log_probs([[0.9, 0.1, 0.0 + 1e-9], [0.2, 0.8, 1e-9], [0.4, 0.6, 1e-9], [0.1, 1e-9, 0.9]])
    spans = ctc_greedy_spans(lp)
    assert [(s.token, s.start, s.end) for s in spans] == [(1, 1, 2), (2, 3, 3)]
    assert gloss_confidences(lp, spans) == [pytest.approx(0.7), pytest.approx(0.9)]
    assert gloss_confidences(lp, spans, "min")[0] == pytest.approx(0.6)
    assert gloss_confidences(lp, spans, "max")[0] == pytest.approx(0.8)
    assert gloss_confidences(lp, spans, "geomean")[0] == pytest.approx(math.sqrt(0.48), abs=1e-4)
    with pytest.raises(SltError, match="choose one of"):
        gloss_confidences(lp, spans, "median")


def test_sentence_confidence_is_exp_of_the_mean_log_prob_or_the_mean_gloss_confidence():
    assert sentence_confidence(math.log(0.8), [0.1]) == pytest.approx(0.8)
    assert sentence_confidence(None, [0.6, 0.8]) == pytest.approx(0.7)
    assert sentence_confidence(None, []) == 0.0


def _toy_step(vocab: int, seed: int):
    """A decoder whose next-token logits depend on the last token only (no cache needed)."""
    table = np.random.default_rng(seed).normal(0, 2, (vocab, vocab)).astype(np.float32)

    def step(tokens, keys, values):
        return table[tokens[:, -1]], keys, values

    return step, table


@pytest.mark.parametrize("search", ["transformers", "reference"])
@pytest.mark.parametrize("penalty", [1.0, 0.6, 1.5])
def test_beam_score_is_the_mean_token_log_prob_of_the_chosen_beam(penalty, search):
    step, table = _toy_step(9, 3)
    s = BeamSettings(3, penalty, 7, eos_id=2, pad_id=1, search=search)
    empty = np.zeros((1, 2 * 3, 1, 0, 1), dtype=np.float32)
    scored = beam_search_scored(step, 2, (empty, empty.copy()), s)
    assert [t for t, _ in scored] == beam_search(step, 2, (empty, empty.copy()), s)
    for tokens, mean in scored:
        logp = log_softmax(table)
        steps = [float(logp[a, b]) for a, b in zip(tokens[:-1], tokens[1:])]
        if len(tokens) == s.max_length:  # the last position is forced to EOS: log-prob 0
            steps[-1] = 0.0
        assert mean == pytest.approx(np.mean(steps), abs=1e-5)


def test_gloss_correctness_under_alignment():
    assert aligned_correct("A B C".split(), "A C".split()) == [True, False, True]
    assert aligned_correct("A X C D".split(), "A B C D".split()) == [True, False, True, True]
    assert aligned_correct([], ["A"]) == []
    assert same_text("The  cat.", "the cat.") and not same_text("the cat", "the cat.")


def test_reliability_table_and_ece():
    conf = [0.05, 0.15, 0.95, 0.9, 0.92]
    ok = [False, True, True, True, False]
    table = reliability(conf, ok, bins=10)
    assert [b.count for b in table.bins] == [1, 1, 0, 0, 0, 0, 0, 0, 0, 3]
    top = table.bins[-1]
    assert top.confidence == pytest.approx(np.mean([0.95, 0.9, 0.92]))
    assert top.accuracy == pytest.approx(2 / 3)
    want = (abs(0 - 0.05) + abs(1 - 0.15) + 3 * abs(2 / 3 - top.confidence)) / 5
    assert table.ece == pytest.approx(want)
    assert math.isnan(table.bins[4].accuracy)


def test_isotonic_fit_is_non_decreasing_and_the_threshold_is_where_it_reaches_the_target():
    xs, fit = isotonic([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1, 0, 0, 1, 0, 1])
    assert list(xs) == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
    assert np.all(np.diff(fit) >= 0) and fit.mean() == pytest.approx(0.5)
    conf = [0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9]
    assert fit_threshold(conf, [0, 0, 0, 1, 1, 0, 1]) == 0.6
    assert fit_threshold(conf, [1] * 7) == 0.0  # right everywhere: nothing flagged
    assert fit_threshold(conf, [0] * 7) == 1.0  # wrong everywhere: everything flagged
    with pytest.raises(SltError, match="no results"):
        fit_threshold([], [])


def test_the_curve_maps_raw_to_dev_accuracy_and_agrees_with_the_threshold():
    rng = np.random.default_rng(0)
    raw = rng.uniform(0, 1, 400)
    ok = rng.uniform(0, 1, 400) < raw**2  # over-confident: right with probability raw²
    curve = isotonic_curve(raw, ok)
    assert [x for x, _ in curve] == sorted(x for x, _ in curve)
    assert all(a[1] < b[1] for a, b in zip(curve, curve[1:]))
    threshold = fit_threshold(raw, ok)
    for x in np.linspace(0, 1, 101):
        assert (apply_curve(curve, x) >= 0.5) == (x >= threshold)
    calibrated = [apply_curve(curve, x) for x in raw]
    assert reliability(calibrated, ok).ece < reliability(raw, ok).ece / 2
    assert apply_curve((), 0.3) == 0.3 and apply_curve(((0.2, 0.1), (0.6, 0.7)), 0.1) == 0.1


def _result(glosses, confs, text, score):
    spans = [GlossSpan(g, i, i + 1, c) for i, (g, c) in enumerate(zip(glosses, confs))]
    conf = sentence_confidence(score, confs)
    return Result(" ".join(glosses), text, spans, 5.0, {}, "m", score, conf, False)


def test_calibrate_fits_both_thresholds_on_dev_results():
    results = [
        _result(["A", "B"], [0.9, 0.95], "a b.", math.log(0.9)),
        _result(["A", "X"], [0.8, 0.2], "a x.", math.log(0.3)),
        _result(["C"], [0.7], "c.", math.log(0.8)),
        _result(["Y", "D"], [0.3, 0.85], "y d.", math.log(0.35)),
    ]
    refs = [("A B", "a b."), ("A B", "a b."), ("C", "c."), ("D", "d.")]
    found = calibrate(results, refs)
    assert found.thresholds.calibrated and found.clips == 4 and found.glosses == 7
    assert found.thresholds.gloss_curve == ((0.2, 0.0), (0.7, 1.0))
    assert found.thresholds.sentence_curve == ((0.3, 0.0), (0.8, 1.0))
    assert found.thresholds.gloss == 0.7  # X (0.2) and Y (0.3) are the wrong glosses
    assert found.thresholds.sentence == 0.8  # 0.3 and 0.35 are the wrong sentences
    assert found.sentence.accuracy == 0.5
    with pytest.raises(SltError, match="paired"):
        calibrate(results, refs[:2])


def test_result_round_trips_through_its_dict():
    r = _result(["A", "B"], [0.9, 0.5], "a b.", -0.2)
    assert Result.from_dict(r.to_dict() | {"path": "x.mp4", "ok": True}) == r
    assert Result.from_dict(replace(r, score=None).to_dict()).score is None


@pytest.fixture(scope="module")
def sample():
    return Translator.from_bundle(sample_model.bundle_path())


def test_every_result_of_the_uncalibrated_sample_model_carries_confidence(sample, caplog):
    assert sample.manifest.confidence is None and sample.thresholds == DEFAULT_THRESHOLDS
    for clip in sample_model.samples():
        r = sample.translate(clip["video"])
        assert r.score is not None and r.score < 0
        assert r.confidence == pytest.approx(math.exp(r.score), abs=1e-4)
        assert r.low_confidence == (r.confidence < DEFAULT_THRESHOLDS.sentence)
        assert r.gloss_spans and all(0 < s.confidence <= 1 for s in r.gloss_spans)
        d = r.to_dict()
        assert {"score", "confidence", "low_confidence"} <= set(d)
        assert "confidence" in d["gloss_spans"][0]


def test_calibrated_thresholds_set_the_flag(sample):
    clip = sample_model.samples()[0]["video"]
    r = sample.translate(clip)
    manifest = sample.manifest
    from slt_serve.manifest import Confidence

    section = Confidence(
        gloss_threshold=0.4, sentence_threshold=min(1.0, r.confidence + 0.01), target_accuracy=0.5,
        split="dev", clips=3, glosses=9, gloss_ece=0.1, sentence_ece=0.1, sentence_accuracy=0.5,
    )  # fmt: skip
    strict = Translator(replace(sample.bundle, manifest=manifest.model_copy(update={"confidence": section})))
    assert strict.thresholds.calibrated and strict.thresholds.sentence == section.sentence_threshold
    flagged = strict.translate(clip)
    assert flagged.low_confidence and flagged.text == r.text
    assert flagged.confidence == r.confidence  # no curve: the raw confidence is served
    # with curves, the dev accuracies of the steps are served, the flag set on the raw value
    curves = {"gloss_curve": ((0.0, 0.25), (0.6, 0.75)), "sentence_curve": ((0.0, 0.1), (0.95, 0.9))}
    mapped = Translator(replace(sample.bundle, manifest=manifest.model_copy(
        update={"confidence": section.model_copy(update=curves)})))  # fmt: skip
    got = mapped.translate(clip)
    assert got.confidence == 0.1 and got.low_confidence and got.score == r.score
    assert [s.confidence for s in got.gloss_spans] == [
        0.75 if s.confidence >= 0.6 else 0.25 for s in r.gloss_spans
    ]
    assert mapped.thresholds.unsure_gloss(0.25) and not mapped.thresholds.unsure_gloss(0.75)
    assert strict.thresholds.unsure_gloss(0.39) and not strict.thresholds.unsure_gloss(0.41)


def test_token_span_confidence_ignores_other_tokens():
    lp = _log_probs([[0.5, 0.5], [0.1, 0.9]])
    assert gloss_confidences(lp, [TokenSpan(1, 0, 1)]) == [pytest.approx(0.7)]


def test_the_api_answers_and_documents_the_confidences(sample, tmp_path):
    from fastapi.testclient import TestClient

    from slt_serve.api import create_app
    from slt_serve.settings import Settings

    clip = sample_model.samples()[0]["video"]
    with TestClient(create_app(sample, Settings(tmp_dir=tmp_path))) as client:
        with clip.open("rb") as f:
            r = client.post("/v1/translate", files={"file": ("clip.mp4", f)})
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert r.status_code == 200, r.text
    body, direct = r.json(), sample.translate(clip).to_dict()
    for key in ("score", "confidence", "low_confidence"):
        assert body[key] == direct[key] and key in schema["TranslationOut"]["properties"]
    assert [s["confidence"] for s in body["gloss_spans"]] == [
        s["confidence"] for s in direct["gloss_spans"]
    ]
    assert "confidence" in schema["GlossSpanOut"]["required"]


def test_batch_rows_carry_the_confidences_in_jsonl_and_csv(sample, tmp_path):
    import csv
    import json

    from slt_serve import batch

    videos = [str(s["video"]) for s in sample_model.samples()]
    for fmt in ("jsonl", "csv"):
        results = batch.ResultsFile(tmp_path / f"out.{fmt}", fmt)
        try:
            batch.run(sample, videos, results, progress=False)
        finally:
            results.close()
        text = (tmp_path / f"out.{fmt}").read_text()
        if fmt == "jsonl":
            rows = [json.loads(line) for line in text.splitlines()]
        else:
            rows = list(csv.DictReader(text.splitlines()))
        for row in rows:
            direct = sample.translate(row["path"])
            assert float(row["confidence"]) == direct.confidence
            assert float(row["score"]) == direct.score
            assert str(row["low_confidence"]).lower() == str(direct.low_confidence).lower()
            spans = row["gloss_spans"] if fmt == "jsonl" else json.loads(row["gloss_spans"])
            assert [s["confidence"] for s in spans] == [s.confidence for s in direct.gloss_spans]
        review = ReviewList(0.999)
        review.read_results(tmp_path / f"out.{fmt}", fmt)
        assert sorted(review.entries) == sorted(videos)
        entry = review.entries[videos[0]]
        assert entry["glosses"][0]["confidence"] == sample.translate(videos[0]).gloss_spans[0].confidence
    with pytest.raises(SltError, match="give a confidence in"):
        ReviewList(0.0)
