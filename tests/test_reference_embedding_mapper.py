"""CSL-Daily's V-L mapper (`VLMapper.type: embedding`): one Linear without bias over the
head's gloss probabilities, imported (`slt import slrt`) and served.

The kit has no CSL-Daily golden. The checkpoint here is the SingleStream S2T golden's
(the kit's seed procedure, the reference's key names) with its projection replaced by
an embedding mapper drawn by the same procedure; the reference's own head
probabilities are the golden's `gloss_probabilities_log`, so the mapped input and the
tokens are computed directly from them and the checkpoint's raw tensors.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import replace

import numpy as np
import pytest
import tiny_bundles as tb
import tiny_mbart
import torch
from reference_kit import (
    golden,
    import_dataset,
    kit_dir,
    procedure_state,
    write_reference_checkpoint,
)
from typer.testing import CliRunner

from slt_export.bundle import RecognitionPart, TranslationPart, export_bundle
from slt_serve.cli import app
from slt_serve.translator import TranslateOptions, Translator
from slt_training.models.beam_search import beam_search
from slt_training.models.recognition import SingleStreamRecognizer
from slt_training.reference.vocab import read_gloss_table, s2g_vocab
from slt_training.runs import S2GRun, TranslationRun

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py

MAPPER = "vl_mapper.mapping.weight"


def _embedding_state() -> dict:
    """The S2T golden's state with an embedding mapper (d_model × head classes), drawn as
    the kit's `fan_in` rule draws a Linear weight."""
    state = {k: v for k, v in procedure_state("s2t_tiny_mbart").items() if "vl_mapper" not in k}
    classes = state["recognition_network.visual_head.gloss_output_layer.weight"].shape[0]
    rng = np.random.default_rng([0, zlib.crc32(MAPPER.encode("utf-8"))])
    state[MAPPER] = (rng.standard_normal((64, classes)) * math.sqrt(1.0 / classes)).astype(
        np.float32
    )
    return state


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("csl")
    state = _embedding_state()
    s2t = write_reference_checkpoint(tmp / "s2t.ckpt", state, s2g=False)
    s2g = write_reference_checkpoint(
        tmp / "s2g.ckpt", procedure_state("s2g_singlestream"), s2g=True
    )
    table = kit_dir("s2g_singlestream") / "gloss_vocab.json"
    args = ["import", "slrt", str(s2t), "--s2g", str(s2g), "--gloss2ids", str(table)]
    args += ["--pretrained", str(kit_dir("tiny_mbart_de")), "--out", str(tmp / "runs")]
    args += ["--dataset", str(import_dataset(tmp / "ds")), "--fps", "25"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    return tmp / "runs", state, table


def test_the_embedding_mapper_reads_the_reference_s_probabilities(imported):
    out, state, table = imported
    recognizer = S2GRun.open(out / "s2g").load_recognizer()
    assert recognizer.options.translation_input == "probabilities"
    trained = TranslationRun.open(out / "s2t").load()
    model = trained.model
    assert model.options.mapper == "embedding" and model.options.feature_dim == 1094
    order = list(s2g_vocab(read_gloss_table(table), table).order)
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    suffix = state["translation_network.gloss_embedding.weight"][[2, 8]]  # </s>, de_DGS
    records = golden("s2t_tiny_mbart")["records"]["procedure"]
    differs = 0
    for i in range(3):
        features = torch.from_numpy(arrays[f"clip{i}/head_rgb_input"])[None] + 1e-8
        with torch.no_grad():
            probs = recognizer.head(features, torch.tensor([features.shape[1]])).log_probs.exp()
            ours = model.mapper(probs)[0].numpy()
        # the reference's probabilities (its class order) through the raw mapper weight
        theirs = np.exp(arrays[f"clip{i}/gloss_probabilities_log"].astype(np.float64))
        np.testing.assert_allclose(probs[0].numpy(), theirs[:, order], atol=1e-5, rtol=0)
        direct = theirs @ state[MAPPER].T.astype(np.float64)
        np.testing.assert_allclose(ours, direct, atol=1e-4, rtol=0)
        embeds = np.concatenate([direct, suffix]) * 8.0  # × √d_model
        mask = torch.ones(1, features.shape[1], dtype=torch.long)
        spec = model.search_spec(trained.generation)
        inputs = {"inputs_embeds": torch.from_numpy(embeds[None].astype(np.float32)),
                  "attention_mask": torch.ones(1, len(embeds), dtype=torch.long)}  # fmt: skip
        want = beam_search(model.mbart, inputs, spec)[0]
        got = model.generate(mask, trained.generation, features=probs)[0].tolist()
        assert got == want, i
        differs += got != records[i]["beam5"]["ids"]  # not the projection golden's
    assert differs


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    tok = tb.tokenizer()
    base = tb.single_stream()
    recognizer = SingleStreamRecognizer(
        replace(base.options, translation_input="probabilities"), len(tb.vocab())
    )
    recognizer.load_state_dict(base.state_dict())
    model = tiny_mbart.translation(
        tok, 3, input="features", feature_dim=len(tb.vocab()), mapper="embedding"
    ).eval()
    result = export_bundle(
        tmp_path_factory.mktemp("csl") / "b",
        RecognitionPart(recognizer.eval(), tb.SPEC, tb.vocab(), fps=tb.FPS, ctc_beam_size=5),
        TranslationPart(model, tok, tb.GENERATION),
    )
    return result, recognizer, model, tok


def test_an_embedding_mapper_bundle_serves_as_pytorch(bundle):
    result, recognizer, model, tok = bundle
    m = result.manifest
    assert m.recognition.feature_dim == m.translation.feature_dim == len(tb.vocab())
    translator = Translator.from_bundle(result.path, TranslateOptions(device="cpu"))
    for seed in (0, 1):
        frames = tb.random_video(16 + 4 * seed, seed=seed)
        got = translator.translate_frames(frames, tb.FPS)
        assert (got.gloss, got.text) == tb.torch_translate(recognizer, model, tok, frames)
