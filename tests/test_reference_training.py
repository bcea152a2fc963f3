"""Training as the reference does, as options: its label-smoothed loss, frozen embeddings."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import MBartConfig, MBartForConditionalGeneration

from slt_serve.errors import SltError
from slt_training.models.translation import (
    IGNORE_INDEX,
    TranslationModel,
    TranslationOptions,
    reference_xent,
)


def test_reference_xent_by_hand():
    # one sentence, two target tokens (ids 2 and 3) then padding; V = 5, pad id 1, ε = 0.2
    logits = torch.log(torch.tensor([[[0.1, 0.1, 0.5, 0.2, 0.1], [0.2, 0.2, 0.2, 0.2, 0.2],
                                      [0.3, 0.1, 0.2, 0.2, 0.2]]]))  # fmt: skip
    labels = torch.tensor([[2, 3, IGNORE_INDEX]])
    eps, other = 0.2, 0.2 / 3  # ε / (V - 2)
    expected = 0.0
    for probs, label in (([0.1, 0.1, 0.5, 0.2, 0.1], 2), ([0.2] * 5, 3)):
        for token, p in enumerate(probs):
            t = 0.0 if token == 1 else (1 - eps if token == label else other)
            expected += t * (math.log(t) - math.log(p)) if t else 0.0
    assert reference_xent(logits, labels, eps, pad_id=1).item() == pytest.approx(expected, rel=1e-5)
    nll = -(math.log(0.5) + math.log(0.2))
    assert reference_xent(logits, labels, 0.0, pad_id=1).item() == pytest.approx(nll, rel=1e-5)


def _model(**options):
    config = MBartConfig(vocab_size=40, d_model=16, encoder_layers=1, decoder_layers=1,
                         encoder_attention_heads=2, decoder_attention_heads=2,
                         encoder_ffn_dim=32, decoder_ffn_dim=32, max_position_embeddings=32,
                         pad_token_id=1, bos_token_id=0, eos_token_id=2, decoder_start_token_id=3)  # fmt: skip
    return TranslationModel(MBartForConditionalGeneration(config), TranslationOptions(**options))


def test_reference_loss_and_frozen_embeddings_train_the_rest():
    torch.manual_seed(0)
    model = _model(loss="reference", freeze_embeddings=True, gloss_vocab_size=12)
    ids, labels = torch.tensor([[4, 5, 2]]), torch.tensor([[7, 8, 2]])
    out = model(torch.ones_like(ids), labels, input_ids=ids)
    out.loss.backward()
    assert model.mbart.get_input_embeddings().weight.grad is None
    assert model.gloss_embedding.weight.grad is None
    assert model.mbart.model.encoder.layers[0].fc1.weight.grad is not None
    expected = reference_xent(out.logits, labels, 0.2, pad_id=1)
    assert torch.allclose(out.loss, expected)
    with pytest.raises(SltError, match="translation loss must be one of"):
        _model(loss="joeynmt")


def test_g2t_stage_trains_with_the_reference_loss_and_frozen_embeddings(tmp_path):
    from test_g2t_stage import make_text_corpus

    from slt_training.config import G2TConfig, validate_config
    from slt_training.runs import TranslationRun
    from slt_training.stages import g2t

    root = make_text_corpus(tmp_path / "ds")
    raw = {
        "stage": "g2t",
        "run_dir": str(tmp_path / "run"),
        "data": {"root": str(root), "lang": "de"},
        "tokenizer": {"vocab_size": 100},
        "model": {"size": "tiny", "loss": "reference", "freeze_embeddings": True},
        "generation": {"num_beams": 1, "max_length": 10},
        "training": {"epochs": 1, "batch_size": 8, "cpu_threads": 1, "keep_best_n": 1},
    }
    g2t.train(validate_config(raw, G2TConfig, "test"))
    options = TranslationRun.open(tmp_path / "run").spec.translation_options
    assert options.loss == "reference" and options.freeze_embeddings
