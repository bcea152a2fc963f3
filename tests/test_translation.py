"""TranslationModel (G2T, S2T) on a 2-layer mBART, and the translation data pipeline."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tiny_mbart
import torch
import torch.nn.functional as F

from slt_serve.errors import SltError
from slt_training.data.annotations import Clip
from slt_training.data.text_data import (
    TranslationDataset,
    collate,
    drop_source_words,
    token_batches,
)
from slt_training.models.translation import (
    IGNORE_INDEX,
    GenerateOptions,
    TranslationModel,
    TranslationOptions,
    TranslationOutput,
    smoothed_cross_entropy,
    symmetric_kl,
)

CLIPS = [Clip(name=n, gloss=g, text=t) for n, (g, t) in zip("abcd", tiny_mbart.SENTENCES)]
FEATURE_DIM = 12


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_mbart.tokenizer()


def _features(name: str) -> np.ndarray:
    rng = np.random.default_rng(ord(name))
    return rng.standard_normal((5 + ord(name) % 4, FEATURE_DIM)).astype(np.float32)


def _overfit(model, batch, steps: int) -> list[float]:
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        model.train()
        out = model(labels=batch.labels, **batch.model_inputs())
        opt.zero_grad()
        out.loss.backward()
        opt.step()
        losses.append(float(out.loss.detach()))
    return losses


def test_collate_pads_sources_and_ignores_padded_labels(tokenizer):
    ds = TranslationDataset(CLIPS, tokenizer)
    batch = collate([ds[0], ds[2]], tokenizer.pad_id)
    a, c = ds[0], ds[2]
    assert batch.input_ids.shape == (2, max(len(a.source), len(c.source)))
    assert batch.input_ids[1, len(c.source) :].eq(tokenizer.pad_id).all()
    assert batch.attention_mask.sum(1).tolist() == [len(a.source), len(c.source)]
    assert batch.labels[1, len(c.target) :].eq(IGNORE_INDEX).all()
    assert batch.labels[0, : len(a.target)].tolist() == a.target
    assert batch.names == ["a", "c"] and batch.texts == [CLIPS[0].text, CLIPS[2].text]


def test_source_word_dropout_replaces_gloss_pieces_only(tokenizer):
    from slt_training.config import S2TConfig, TrainingConfig
    from slt_training.stages.translation_task import batched_loader_args

    ds = TranslationDataset(CLIPS, tokenizer)
    batch = collate([ds[0], ds[2]], tokenizer.pad_id)
    assert drop_source_words(batch, 0.0, tokenizer.unk_id) is batch
    torch.manual_seed(0)
    dropped = drop_source_words(batch, 0.5, tokenizer.unk_id).input_ids
    for row, (old, new) in enumerate(zip(batch.input_ids, dropped)):
        n = len(ds[[0, 2][row]].source)  # glosses </s> LANG, then padding
        changed = old.ne(new)
        assert new[changed].eq(tokenizer.unk_id).all()
        assert not changed[n - 2 :].any()  # </s>, LANG and padding stay
    assert dropped.eq(tokenizer.unk_id).any() and dropped.ne(tokenizer.unk_id).any()
    _, _, collate_fn, _ = batched_loader_args(
        ds, TrainingConfig(), None, tokenizer.pad_id, 0.999, 3
    )
    glosses = collate_fn([[ds[0]]]).input_ids[0, : len(ds[0].source) - 2]
    assert glosses.eq(3).all()  # the training batches get it (p near 1)
    with pytest.raises(ValueError, match="source_word_dropout"):
        S2TConfig.model_validate(
            {"run_dir": "r", "s2g_run": "s", "model": {"source_word_dropout": 0.1}}
        )


def test_token_batches_cover_everything_once_under_the_budget(tokenizer):
    examples = TranslationDataset(CLIPS, tokenizer).examples * 6
    batches = list(token_batches(examples, max_tokens=60, seed=1))
    assert sorted(i for b in batches for i in b) == list(range(len(examples)))
    for b in batches:
        longest = max(examples[i].source_len + len(examples[i].target) for i in b)
        assert longest * len(b) <= 60 or len(b) == 1
    assert batches != list(token_batches(examples, max_tokens=60, seed=2))


def test_dataset_refuses_clips_without_text_or_glosses(tokenizer):
    with pytest.raises(SltError, match="no text"):
        TranslationDataset([Clip(name="x", gloss="A")], tokenizer)
    with pytest.raises(SltError, match="no glosses"):
        TranslationDataset([Clip(name="x", text="a .")], tokenizer)


def test_loss_is_label_smoothed_cross_entropy_over_real_tokens():
    logits = torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    loss, nll, n = smoothed_cross_entropy(logits, labels, 0.1)
    keep = labels != IGNORE_INDEX
    logp = logits[keep].log_softmax(-1)
    expected = (
        0.9 * -logp.gather(1, labels[keep][:, None]).squeeze(1) - 0.1 * logp.mean(-1)
    ).mean()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(nll, F.cross_entropy(logits[keep], labels[keep]))
    assert n == 3


def test_symmetric_kl_is_half_both_directions_over_real_tokens():
    p, q = torch.randn(2, 3, 7), torch.randn(2, 3, 7)
    labels = torch.tensor([[1, 2, IGNORE_INDEX], [3, IGNORE_INDEX, IGNORE_INDEX]])
    keep = labels != IGNORE_INDEX
    lp, lq = p[keep].log_softmax(-1), q[keep].log_softmax(-1)
    kl = lambda a, b: F.kl_div(b, a, log_target=True, reduction="none").sum(-1)  # noqa: E731
    torch.testing.assert_close(symmetric_kl(p, q, labels), (0.5 * (kl(lp, lq) + kl(lq, lp))).mean())
    assert float(symmetric_kl(p, p, labels)) == pytest.approx(0.0, abs=1e-6)


def test_r_drop_adds_the_kl_between_two_dropout_passes(tokenizer):
    from slt_training.text.mbart import build_mbart, preset

    batch = collate(TranslationDataset(CLIPS, tokenizer).examples, tokenizer.pad_id)
    inputs = batch.model_inputs()
    plain = tiny_mbart.translation(tokenizer, label_smoothing=0.1)
    no_dropout = tiny_mbart.translation(tokenizer, label_smoothing=0.1, r_drop=4.0)
    one, two = plain(labels=batch.labels, **inputs), no_dropout(labels=batch.labels, **inputs)
    torch.testing.assert_close(two.loss, one.loss)  # same masks (none): no KL, the same CE
    assert two.logits.shape == one.logits.shape and two.num_tokens == one.num_tokens

    torch.manual_seed(0)
    mbart = build_mbart(preset("tiny", dropout=0.3, attention_dropout=0.0), tokenizer)
    model = TranslationModel(mbart, TranslationOptions(label_smoothing=0.1, r_drop=4.0))
    torch.manual_seed(1)
    out = model(labels=batch.labels, **inputs)
    single = TranslationModel(mbart, TranslationOptions(label_smoothing=0.1))
    torch.manual_seed(1)  # the same dropout draws over the batch stacked on itself
    twice = single(
        labels=torch.cat([batch.labels] * 2),
        **{k: torch.cat([v, v]) for k, v in inputs.items()},
    )
    first, second = twice.logits.chunk(2)
    kl = symmetric_kl(first, second, batch.labels)
    assert float(kl.detach()) > 0  # dropout made the two passes differ
    torch.testing.assert_close(out.loss, twice.loss + 4.0 * kl)
    torch.testing.assert_close(out.logits, first)
    out.loss.backward()
    assert mbart.lm_head.weight.grad is not None
    model.eval()  # evaluation runs once, without the term
    torch.testing.assert_close(
        model(labels=batch.labels, **inputs).loss, single.eval()(labels=batch.labels, **inputs).loss
    )
    with pytest.raises(SltError, match="r_drop"):
        TranslationOptions(r_drop=-1.0).verify()


def test_g2t_trains_and_generates(tokenizer):
    model = tiny_mbart.translation(tokenizer, label_smoothing=0.1)
    ds = TranslationDataset(CLIPS, tokenizer)
    batch = collate(ds.examples, tokenizer.pad_id)
    first = model(labels=batch.labels, **batch.model_inputs())
    assert type(first) is TranslationOutput and dataclasses.is_dataclass(first)
    assert first.logits.shape == (*batch.labels.shape, len(tokenizer))
    assert first.num_tokens == int(batch.labels.ne(IGNORE_INDEX).sum())
    losses = _overfit(model, batch, steps=60)
    assert losses[-1] < 0.5 * losses[0]
    model.eval()
    options = GenerateOptions(num_beams=5, length_penalty=1.5, max_length=20)
    ids = model.generate(options=options, **batch.model_inputs())
    assert ids.shape[0] == len(CLIPS) and ids.shape[1] <= 20
    assert ids[:, 0].eq(tokenizer.lang_id).all()  # the decoder starts at the language token
    texts = model.translate(tokenizer, options=options, **batch.model_inputs())
    correct = sum(h == c.text for h, c in zip(texts, CLIPS))
    assert correct >= 3, texts


def test_s2t_maps_features_and_trains(tokenizer):
    model = tiny_mbart.translation(
        tokenizer, input="features", feature_dim=FEATURE_DIM, label_smoothing=0.0
    )
    ds = TranslationDataset(CLIPS, tokenizer, load_features=_features)
    batch = collate(ds.examples, tokenizer.pad_id)
    assert batch.input_ids is None and batch.features.shape[-1] == FEATURE_DIM
    assert batch.features[2, len(ds[2].features) :].eq(0).all()
    losses = _overfit(model, batch, steps=60)
    assert losses[-1] < 0.5 * losses[0]
    assert model.mapper.net[0].weight.grad is not None
    texts = model.translate(tokenizer, options=GenerateOptions(5, 1.0, 20), **batch.model_inputs())
    assert len(texts) == len(CLIPS) and all(isinstance(t, str) for t in texts)
    assert sum(h == c.text for h, c in zip(texts, CLIPS)) >= 3, texts


def test_models_refuse_the_wrong_input(tokenizer):
    g2t = tiny_mbart.translation(tokenizer)
    s2t = tiny_mbart.translation(tokenizer, input="features", feature_dim=FEATURE_DIM)
    mask, labels = torch.ones(1, 3, dtype=torch.long), torch.tensor([[5, 2]])
    with pytest.raises(SltError, match="input_ids"):
        g2t(mask, labels, features=torch.zeros(1, 3, FEATURE_DIM))
    with pytest.raises(SltError, match="features"):
        s2t(mask, labels, input_ids=torch.ones(1, 3, dtype=torch.long))
    with pytest.raises(SltError, match="unknown"):
        TranslationOptions(input="video").verify()
