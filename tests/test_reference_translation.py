"""G2T and S2T checkpoints trained with the reference code: key mapping and the kit's
goldens (tiny mBART of the cc25 family) reproduced in PyTorch: encoder inputs,
encoder states, first-step log-probs, and generated token ids (beam 5 and greedy)."""

from __future__ import annotations

import json
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from reference_kit import (
    golden,
    import_dataset,
    kit_dir,
    procedure_state,
    write_reference_checkpoint,
)
from typer.testing import CliRunner

from slt_serve.beam_search import BeamSettings
from slt_serve.beam_search import beam_search as runtime_beam_search
from slt_serve.cli import app
from slt_serve.decoding import ctc_greedy_decode
from slt_serve.errors import SltError
from slt_training.models.beam_search import SearchSpec
from slt_training.models.beam_search import beam_search as reference_beam_search
from slt_training.models.translation import GenerateOptions
from slt_training.reference.checkpoint import read_checkpoint
from slt_training.reference.text import pruned_tokenizer, read_map_ids, reference_text
from slt_training.reference.translation import (
    build_translation,
    read_config,
    reference_gloss_ids,
)
from slt_training.reference.vocab import read_gloss_table, s2g_vocab

EOS_BIAS_KEY = "translation_network.model.final_logits_bias"
RTOL = 1e-5  # inputs_embeds (the kit's advice)
ATOL = 1e-4  # encoder states and log-probs


def _variant_state(name: str, variant: str) -> dict:
    state = procedure_state(name)
    if variant == "eos_bias5":
        info = golden(name)["eos_bias_variant"]
        state[info["key"]] = state[info["key"]].copy()
        state[info["key"]][tuple(info["index"])] = info["value"]
    return state


def _import(tmp_path, name: str, variant: str):
    path = write_reference_checkpoint(
        tmp_path / f"{variant}.ckpt", _variant_state(name, variant), s2g=False
    )
    folder = kit_dir("tiny_mbart_de")
    table_file = folder / "gloss2ids.json"
    table = read_gloss_table(table_file)
    start = golden(name)["generation"]["decoder_start_id"]
    return build_translation(
        read_checkpoint(path), read_config(folder), table, str(table_file), start
    )


@pytest.fixture(scope="module", params=["procedure", "eos_bias5"])
def g2t(request, tmp_path_factory):
    torch.set_num_threads(1)
    return request.param, _import(tmp_path_factory.mktemp("g2t"), "g2t_tiny_mbart", request.param)


def _generate(model, options, **inputs):
    mask = torch.ones(1, next(iter(inputs.values())).shape[1], dtype=torch.long)
    with torch.no_grad():
        return model.generate(mask, options, **inputs)[0].tolist()


def test_g2t_inputs_encoder_and_first_step(g2t):
    variant, imported = g2t
    model, arrays = imported.model, np.load(kit_dir("g2t_tiny_mbart") / "arrays.npz")
    for i, record in enumerate(golden("g2t_tiny_mbart")["records"][variant]):
        ids = reference_gloss_ids(record["gloss_input"].split(), imported.gloss_table, "de_DGS")
        assert ids == record["gloss_ids"]
        x = torch.tensor([ids])
        mask = torch.ones_like(x)
        with torch.no_grad():
            inputs = model.encoder_batch(mask, x, None)
            encoder = model.mbart.get_encoder()(**inputs).last_hidden_state
            start = torch.tensor([[model.decoder_start_id]])
            logits = model.mbart(**inputs, decoder_input_ids=start).logits
        np.testing.assert_allclose(
            inputs["inputs_embeds"][0].numpy(),
            arrays[f"clip{i}/inputs_embeds"],
            rtol=RTOL,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            encoder[0].numpy(), arrays[f"clip{i}/encoder_last_hidden_state"], atol=ATOL
        )
        first = logits[0, -1].log_softmax(-1).numpy()
        np.testing.assert_allclose(
            first, arrays[f"{variant}/clip{i}/first_step_log_probs"], atol=ATOL
        )


def _golden_options(name: str, search: str) -> GenerateOptions:
    """The golden's generation settings with the reference's search: greedy, or its beam."""
    generation = golden(name)["generation"]
    return GenerateOptions(
        num_beams=1 if search == "greedy" else generation["num_beams"],
        length_penalty=generation["length_penalty"],
        max_length=generation["max_length"],
        search="reference",
    )


@pytest.mark.parametrize("search", ["greedy", "beam5"])
def test_g2t_generated_token_ids(g2t, search):
    variant, imported = g2t
    options = _golden_options("g2t_tiny_mbart", search)
    for record in golden("g2t_tiny_mbart")["records"][variant]:
        ids = _generate(imported.model, options, input_ids=torch.tensor([record["gloss_ids"]]))
        assert ids == record[search]["ids"], record["name"]


def test_mismatched_gloss_table_is_refused(tmp_path):
    path = write_reference_checkpoint(
        tmp_path / "g2t.ckpt", procedure_state("g2t_tiny_mbart"), s2g=False
    )
    short = tmp_path / "gloss2ids.json"
    short.write_text(
        json.dumps(list(read_gloss_table(kit_dir("tiny_mbart_de") / "gloss2ids.json"))[:1094])
    )
    with pytest.raises(SltError, match=r"gloss2ids.json: 1094 glosses.*\(1094 vs 1124\)"):
        build_translation(
            read_checkpoint(path),
            read_config(kit_dir("tiny_mbart_de")),
            read_gloss_table(short),
            str(short),
            6,
        )


@pytest.fixture(scope="module", params=["procedure", "eos_bias5"])
def s2t(request, tmp_path_factory):
    torch.set_num_threads(1)
    variant = request.param
    path = write_reference_checkpoint(
        tmp_path_factory.mktemp("s2t") / "best.ckpt",
        _variant_state("s2t_tiny_mbart", variant),
        s2g=False,
    )
    folder = kit_dir("tiny_mbart_de")
    table_file = folder / "gloss2ids.json"
    head_file = kit_dir("s2g_singlestream") / "gloss_vocab.json"  # the S2T head's 1094 glosses
    head_vocab = s2g_vocab(read_gloss_table(head_file), head_file)
    start = golden("s2t_tiny_mbart")["generation"]["decoder_start_id"]
    imported = build_translation(
        read_checkpoint(path),
        read_config(folder),
        read_gloss_table(table_file),
        str(table_file),
        start,
        head_vocab=(head_vocab, str(head_file)),
    )
    return variant, imported, head_vocab


def _s2t_clip(imported, arrays, i):
    """The reference's chain for clip i: head (features + 1e-8, as its collate adds), mapper."""
    features = torch.from_numpy(arrays[f"clip{i}/head_rgb_input"])[None] + 1e-8
    mask = torch.ones(1, features.shape[1], dtype=torch.long)
    with torch.no_grad():
        head = imported.head(features, torch.tensor([features.shape[1]]))
        inputs = imported.model.encoder_batch(mask, None, head.features)
    return head, inputs


def test_s2t_head_mapper_inputs_and_encoder(s2t):
    variant, imported, vocab = s2t
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    for i, record in enumerate(golden("s2t_tiny_mbart")["records"][variant]):
        head, inputs = _s2t_clip(imported, arrays, i)
        expected = arrays[f"clip{i}/gloss_probabilities_log"][:, list(vocab.order)]
        np.testing.assert_allclose(head.log_probs[0].numpy(), expected, atol=ATOL)
        np.testing.assert_allclose(
            head.features[0].numpy(), arrays[f"clip{i}/gloss_feature"], atol=ATOL
        )
        assert (
            vocab.reference_ids(ctc_greedy_decode(head.log_probs[0].numpy()))
            == record["gloss_greedy_ids"]
        )
        with torch.no_grad():
            mapped = imported.model.mapper(head.features)[0].numpy()
            encoder = imported.model.mbart.get_encoder()(**inputs).last_hidden_state
        np.testing.assert_allclose(mapped, arrays[f"clip{i}/mapped_feature"], atol=ATOL)
        np.testing.assert_allclose(
            inputs["inputs_embeds"][0].numpy(),
            arrays[f"clip{i}/inputs_embeds"],
            rtol=RTOL,
            atol=ATOL,
        )
        np.testing.assert_allclose(
            encoder[0].numpy(), arrays[f"clip{i}/encoder_last_hidden_state"], atol=ATOL
        )


@pytest.mark.parametrize("search", ["greedy", "beam5"])
def test_s2t_generated_token_ids(s2t, search):
    variant, imported, _ = s2t
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    options = _golden_options("s2t_tiny_mbart", search)
    for i, record in enumerate(golden("s2t_tiny_mbart")["records"][variant]):
        head, inputs = _s2t_clip(imported, arrays, i)
        mask = torch.ones(1, head.features.shape[1], dtype=torch.long)
        with torch.no_grad():
            ids = imported.model.generate(mask, options, features=head.features)[0].tolist()
        assert ids == record[search]["ids"], (variant, i)


@pytest.mark.parametrize("name", ["g2t_tiny_mbart", "s2t_tiny_mbart"])
def test_reference_text_of_every_record(name):
    folder = kit_dir("tiny_mbart_de")
    tokenizer = pruned_tokenizer(
        folder / "tokenizer.json", read_map_ids(folder / "map_ids.json"), "de_DE"
    )
    assert tokenizer.lang_id == golden(name)["generation"]["decoder_start_id"]
    for records in golden(name)["records"].values():
        for record in records:
            for search in ("beam5", "greedy"):
                text = reference_text(record[search]["ids"], tokenizer, "de_DE")
                assert text == record[search]["text"]


def test_two_stream_s2t_checkpoints_need_the_head_that_feeds_them(tmp_path):
    state = procedure_state("s2t_tiny_mbart")
    for key in [k for k in state if k.startswith("recognition_network.visual_head.")]:
        state[key.replace("visual_head.", "visual_head_fuse.")] = -state[key]
    path = write_reference_checkpoint(tmp_path / "joint.ckpt", state, s2g=False)
    folder = kit_dir("tiny_mbart_de")
    table = folder / "gloss2ids.json"
    args = (read_checkpoint(path), read_config(folder), read_gloss_table(table), str(table), 6)
    with pytest.raises(SltError, match="say which head feeds its translation"):
        build_translation(*args)
    imported = build_translation(*args, gloss_feature="fuse_gloss_feature")
    assert (
        imported.stream == "joint"
    )  # the fuse head, not visual_head (tests/test_reference_two_stream_s2t.py)
    weight = state["recognition_network.visual_head_fuse.fc1.weight"]
    assert torch.equal(imported.head.project.weight, torch.from_numpy(weight))


def test_g2t_padded_batch_gives_the_batched_goldens(g2t):
    """All ten inputs as one padded batch (as the reference's dataloader runs them)."""
    variant, imported = g2t
    records = golden("g2t_tiny_mbart")["records"][variant]
    longest = max(len(r["gloss_ids"]) for r in records)
    pad = imported.gloss_table.index("<pad>")
    ids = torch.tensor([r["gloss_ids"] + [pad] * (longest - len(r["gloss_ids"])) for r in records])
    mask = torch.tensor(
        [[1] * len(r["gloss_ids"]) + [0] * (longest - len(r["gloss_ids"])) for r in records]
    )
    options = GenerateOptions(num_beams=5, length_penalty=1.0, max_length=100, search="reference")
    with torch.no_grad():
        out = imported.model.generate(mask, options, input_ids=ids)
    for row, expected in zip(out.tolist(), golden("g2t_tiny_mbart")["batched_padded"][variant]):
        assert row[: len(expected["ids"])] == expected["ids"]
        assert all(t == imported.model.pad_id for t in row[len(expected["ids"]) :])


class _ToyCache:
    def reorder_cache(self, order):
        pass


class _ToyDecoder:
    """A decoder whose logits depend on the position and the last token (few exact ties),
    shaped as `slt_training.models.beam_search` calls mBART."""

    def __init__(self, table: np.ndarray):
        self.table, self.position = torch.from_numpy(table), 0

    def get_encoder(self):
        return lambda attention_mask, **_: SimpleNamespace(
            last_hidden_state=torch.zeros(attention_mask.shape[0], 1, 1)
        )

    def forward(self, encoder_outputs, attention_mask, decoder_input_ids, use_cache, **_):
        self.position += 1
        logits = self.table[self.position - 1][decoder_input_ids[:, -1]][:, None]
        return SimpleNamespace(logits=logits, past_key_values=_ToyCache())

    __call__ = forward


@pytest.mark.parametrize("forced_eos", [True, False])
@pytest.mark.parametrize("penalty", [1.0, 0.6, 1.5])
def test_runtime_reference_search_is_the_pytorch_one(forced_eos, penalty):
    """slt_serve's numpy beam search with search="reference" (what bundles of imported runs
    use) gives the tokens of the PyTorch 4.11.3 search on 40 random decoders."""
    beams, max_length, sources, vocab = 3, 8, 2, 7
    settings = BeamSettings(
        beams, penalty, max_length, 0, 2, 1, forced_eos=forced_eos, search="reference"
    )
    spec = SearchSpec(0, 2, 1, beams, max_length, penalty, 2 if forced_eos else None)
    for seed in range(40):
        rng = np.random.default_rng(seed)
        table = rng.normal(0, 2, (max_length, vocab, vocab)).astype(np.float32)
        table[..., 2] += rng.uniform(-2, 2)  # EOS more or less likely

        def step(tokens, keys, values, table=table):
            grown = np.zeros(keys.shape[:3] + (keys.shape[3] + 1, 1), np.float32)
            return table[keys.shape[3]][tokens[:, -1]], grown, values

        empty = np.zeros((1, sources * beams, 1, 0, 1), np.float32)
        ours = runtime_beam_search(step, sources, (empty, empty.copy()), settings)
        mask = {"attention_mask": torch.ones(sources, 3, dtype=torch.long)}
        assert ours == reference_beam_search(_ToyDecoder(table), mask, spec), seed


def _cli(*args):
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


def _bundle_generates(translator, sources, search: str) -> list[list[int]]:
    """Token ids of each (1, S[, D]) source through the bundle's own Seq2Seq."""
    settings = translator.generation
    settings = replace(settings, num_beams=1 if search == "greedy" else settings.num_beams)
    mask = [np.ones(s.shape[:2], dtype=np.int64) for s in sources]
    return [translator.seq2seq.generate(s, m, settings)[0] for s, m in zip(sources, mask)]


def _bundle_of_import(tmp, name: str, variant: str, run, *import_options):
    """`slt import slrt` of the `name` golden's `variant` checkpoint with `import_options`
    (--out among them), then `slt export model` of the run folder `run`: its Translator."""
    from slt_serve.translator import TranslateOptions, Translator

    torch.set_num_threads(1)
    state = _variant_state(name, variant)
    checkpoint = write_reference_checkpoint(tmp / f"{name}.ckpt", state, s2g=False)
    _cli("import", "slrt", checkpoint, "--pretrained", kit_dir("tiny_mbart_de"), *import_options)
    _cli("export", "model", run, "--out", tmp / "bundle", "--no-window-check")  # full-size S3D
    return Translator.from_bundle(tmp / "bundle", TranslateOptions())


# One variant: the export includes the S2G network's full-size S3D (~25 s); the eos_bias5
# variant goes through the same runtime search in the G2T bundle test and through PyTorch
# in test_s2t_generated_token_ids.
@pytest.fixture(scope="module", params=["procedure"])
def s2t_bundle(request, tmp_path_factory):
    """`slt import slrt` of the S2T golden's checkpoint, then `slt export model` of OUT/s2t."""
    tmp = tmp_path_factory.mktemp("s2t_bundle")
    s2g = write_reference_checkpoint(
        tmp / "s2g.ckpt", procedure_state("s2g_singlestream"), s2g=True
    )
    table = kit_dir("s2g_singlestream") / "gloss_vocab.json"
    options = ["--s2g", s2g, "--gloss2ids", table, "--dataset", import_dataset(tmp / "ds")]
    options += ["--out", tmp / "runs", "--fps", "25"]
    run = tmp / "runs" / "s2t"
    return request.param, _bundle_of_import(tmp, "s2t_tiny_mbart", request.param, run, *options)


@pytest.mark.slow  # exports the S2G network's full-size S3D too (~1 min on one thread)
@pytest.mark.parametrize("search", ["greedy", "beam5"])
def test_s2t_bundle_of_an_imported_run_generates_the_golden_tokens(s2t_bundle, search):
    """import → export → the runtime's Seq2Seq on the golden's gloss features (the S2T
    head's output, which the bundle's s2g.onnx computes from video)."""
    variant, translator = s2t_bundle
    m = translator.manifest
    assert (m.generation.search, m.translation.source_suffix) == ("reference", 2)
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    records = golden("s2t_tiny_mbart")["records"][variant]
    sources = [arrays[f"clip{i}/gloss_feature"][None] for i in range(len(records))]
    got = _bundle_generates(translator, sources, search)
    assert got == [record[search]["ids"] for record in records], variant


@pytest.fixture(scope="module", params=["procedure", "eos_bias5"])
def g2t_bundle(request, tmp_path_factory):
    """`slt import slrt` of the G2T golden's checkpoint, then `slt export model` of the run."""
    tmp = tmp_path_factory.mktemp("g2t_bundle")
    run = tmp / "run"
    return request.param, _bundle_of_import(tmp, "g2t_tiny_mbart", request.param, run, "--out", run)


@pytest.mark.parametrize("search", ["greedy", "beam5"])
def test_g2t_bundle_of_an_imported_run_generates_the_golden_tokens(g2t_bundle, search):
    """import → export → the runtime: the bundle's gloss table turns each record's glosses
    into the reference's ids, its Seq2Seq gives the golden's tokens, and translate_gloss
    (the served path, beam 5) the text of the golden's beam."""
    variant, translator = g2t_bundle
    m = translator.manifest
    assert (m.generation.search, m.translation.source_suffix) == ("reference", 0)
    records = golden("g2t_tiny_mbart")["records"][variant]
    table = m.translation.gloss_table
    sources = [np.asarray([table.source_ids(r["gloss_input"].split())]) for r in records]
    assert [s[0].tolist() for s in sources] == [r["gloss_ids"] for r in records]
    got = _bundle_generates(translator, sources, search)
    assert got == [record[search]["ids"] for record in records], variant
    if search == "beam5":
        for record in records:
            text = translator.translate_gloss(record["gloss_input"]).text
            assert text == translator.tokenizer.decode(record["beam5"]["ids"]), record["name"]


def test_g2t_import_needs_the_pretrained_folder_and_a_new_run_folder(tmp_path):
    ckpt = write_reference_checkpoint(
        tmp_path / "g2t.ckpt", procedure_state("g2t_tiny_mbart"), s2g=False
    )
    result = CliRunner().invoke(app, ["import", "slrt", str(ckpt), "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, SltError)
    assert "a G2T checkpoint needs --pretrained FOLDER" in str(result.exception)
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "model.json").write_text("{}")
    args = ["import", "slrt", str(ckpt), "--pretrained", str(kit_dir("tiny_mbart_de"))]
    result = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "r")])
    assert isinstance(result.exception, SltError)
    assert "already holds a run (model.json); give another --out" in str(result.exception)
