"""`slt import`: the reference's files brought into our formats."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import replace

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

from slt_serve.cli import app
from slt_serve.errors import SltError
from slt_training.data.pose_files import read_npz
from slt_training.reference.importer import (
    S2TImportOptions,
    import_s2g,
    import_s2t,
    write_dataset_vocab,
)
from slt_training.reference.keypoints import import_keypoints
from slt_training.reference.preprocess import KEYPOINTS_79
from slt_training.reference.vocab import read_gloss_table, s2g_vocab
from slt_training.runs import S2GRun, TranslationRun


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_slrt_keypoints_become_our_npz_cache(tmp_path):
    points = np.load(kit_dir() / "s2g_inputs.npz")["keypoints_133"]
    pkl = tmp_path / "phoenix-2014t-keypoints.pkl"
    pkl.write_bytes(
        pickle.dumps(
            {"dev/clip-1": {"keypoints": points}, "test/clip-2": {"keypoints": points[:5]}}
        )
    )
    args = ["import", "slrt-keypoints", str(pkl), str(tmp_path / "ds")]
    result = CliRunner().invoke(app, [*args, "--width", "210", "--height", "260", "--fps", "25"])
    assert result.exit_code == 0, result.output
    seq = read_npz(tmp_path / "ds" / "keypoints" / "dev" / "clip-1.npz")
    assert np.array_equal(seq.keypoints, points) and (seq.width, seq.height, seq.fps) == (
        210,
        260,
        25.0,
    )
    assert read_npz(tmp_path / "ds" / "keypoints" / "test" / "clip-2.npz").keypoints.shape == (
        5,
        133,
        3,
    )
    again = import_keypoints(pkl, tmp_path / "ds", 210, 260, 25.0)
    assert (again.written, again.skipped) == (0, 2)


def test_slrt_keypoints_refuse_code_and_wrong_shapes(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(
        SltError, match="refusing to unpickle posix.system|refusing to unpickle os.system"
    ):
        import_keypoints(evil, tmp_path / "ds", 210, 260, 25.0)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"a": {"keypoints": np.zeros((4, 79, 3), np.float32)}}))
    with pytest.raises(
        SltError, match=r"clip 'a' keypoints are \(4, 79, 3\), expected \(T, 133, 3\)"
    ):
        import_keypoints(bad, tmp_path / "ds", 210, 260, 25.0)


def _s2g_checkpoint(path, golden_name="s2g_singlestream"):
    """The reference's S2G checkpoint of a golden's seed procedure, written at `path`."""
    return write_reference_checkpoint(path, procedure_state(golden_name), s2g=True)


def _import_slrt(checkpoint, table, dataset, out, *s2t_options):
    """`slt import slrt` as a user types it, at 25 fps."""
    args = ["import", "slrt", str(checkpoint), *s2t_options, "--gloss2ids", str(table)]
    args += ["--dataset", str(dataset), "--out", str(out), "--fps", "25"]
    return CliRunner().invoke(app, args)


@pytest.fixture(scope="module")
def single_run(tmp_path_factory):
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("import")
    ckpt = _s2g_checkpoint(tmp / "best.ckpt")
    table = kit_dir("s2g_singlestream") / "gloss_vocab.json"
    result = _import_slrt(ckpt, table, import_dataset(tmp / "ds"), tmp / "run")
    assert result.exit_code == 0, result.output
    return tmp, table


def test_imported_s2g_run_reproduces_the_golden(single_run):
    tmp, table = single_run
    run = S2GRun.open(tmp / "run")
    spec = run.input_spec()
    assert (spec.input_size, spec.mean, spec.std, spec.eval_crop) == (
        224,
        (0.5,) * 3,
        (0.5,) * 3,
        1.0,
    )
    model = run.load_recognizer()
    bgr = torch.from_numpy(np.load(kit_dir("s2g_singlestream") / "preprocessed.npz")["video"])
    with torch.no_grad():
        out = model(bgr[:, [2, 1, 0]], torch.tensor([bgr.shape[2]]))  # the run reads RGB
    vocab = s2g_vocab(read_gloss_table(table), table)
    expected = np.load(kit_dir("s2g_singlestream") / "outputs.npz")["gloss_probabilities_log"]
    np.testing.assert_allclose(
        out.gloss_log_probs[0].numpy(), expected[:, list(vocab.order)], atol=1e-4, rtol=0
    )
    assert run.vocab() == vocab.vocab
    decoded = " ".join(run.vocab().decode(model.decode(out, merge_repeats=True)[0])).upper()
    assert decoded == golden("s2g_singlestream")["decodes"]["greedy"]["glosses"]


def test_import_refuses_a_wrong_table_and_another_dataset_vocabulary(single_run):
    tmp, table = single_run
    other = kit_dir("s2g_twostream") / "gloss_vocab.json"  # 1124 glosses for a 1094-class model
    result = _import_slrt(tmp / "best.ckpt", other, tmp / "ds", tmp / "run2")
    assert isinstance(result.exception, SltError) and "(1124 vs 1094)" in str(result.exception)
    assert not (tmp / "run2").exists()  # refused before anything is written
    theirs = s2g_vocab(read_gloss_table(other), other).vocab
    with pytest.raises(SltError, match="differs from the checkpoint's gloss table"):
        write_dataset_vocab(tmp / "ds", theirs, other)  # ds holds the SingleStream table now


@pytest.mark.parametrize("variant", ["procedure", "eos_bias5"])
def test_imported_s2t_runs_reproduce_the_golden(tmp_path, variant):
    torch.set_num_threads(1)
    state = procedure_state("s2t_tiny_mbart")
    if variant == "eos_bias5":
        info = golden("s2t_tiny_mbart")["eos_bias_variant"]
        state[info["key"]] = state[info["key"]].copy()
        state[info["key"]][tuple(info["index"])] = info["value"]
    s2t = write_reference_checkpoint(tmp_path / "s2t.ckpt", state, s2g=False)
    s2g = _s2g_checkpoint(tmp_path / "s2g.ckpt")
    table = kit_dir("s2g_singlestream") / "gloss_vocab.json"
    s2t_options = ["--s2g", str(s2g), "--pretrained", str(kit_dir("tiny_mbart_de"))]
    result = _import_slrt(
        s2t, table, import_dataset(tmp_path / "ds"), tmp_path / "runs", *s2t_options
    )
    assert result.exit_code == 0, result.output
    head = S2GRun.open(tmp_path / "runs" / "s2g").load_recognizer().head
    trained = TranslationRun.open(tmp_path / "runs" / "s2t").load()
    assert trained.run.spec.generation.search == "reference"
    arrays = np.load(kit_dir("s2t_tiny_mbart") / "arrays.npz")
    for i, record in enumerate(golden("s2t_tiny_mbart")["records"][variant]):
        features = torch.from_numpy(arrays[f"clip{i}/head_rgb_input"])[None] + 1e-8
        mask = torch.ones(1, features.shape[1], dtype=torch.long)
        with torch.no_grad():
            gloss_features = head(features, torch.tensor([features.shape[1]])).features
            beam = trained.model.generate(mask, trained.generation, features=gloss_features)
            greedy = replace(trained.generation, num_beams=1)
            best = trained.model.generate(mask, greedy, features=gloss_features)
        assert beam[0].tolist() == record["beam5"]["ids"], (variant, i)
        assert best[0].tolist() == record["greedy"]["ids"], (variant, i)
        assert trained.tokenizer.lang_id == beam[0, 0]


@pytest.mark.slow  # exports the full-size S3D to ONNX (~1 min on one thread)
def test_imported_s2g_run_exports_a_bundle_that_reproduces_the_golden(single_run, tmp_path):
    import onnxruntime as ort

    from slt_serve.translator import TranslateOptions, Translator
    from slt_training.models.recognition import merge_repeated

    tmp, table = single_run
    result = CliRunner().invoke(
        app,
        ["export", "model", str(tmp / "run"), "--out", str(tmp_path / "b"), "--no-window-check"],
    )  # a full-size S3D: the whole-window parity is tests/test_export_bundle.py's
    assert result.exit_code == 0, result.output
    session = ort.InferenceSession(str(tmp_path / "b" / "s2g.onnx"))
    bgr = np.load(kit_dir("s2g_singlestream") / "preprocessed.npz")["video"][0]  # (3, T, H, W)
    frames = np.ascontiguousarray(bgr[[2, 1, 0]].transpose(1, 0, 2, 3))  # RGB, time-major
    feeds = {"frames": frames, "first_step": np.asarray(0, dtype=np.int64)}
    log_probs, _ = session.run(["log_probs", "features"], feeds)
    vocab = s2g_vocab(read_gloss_table(table), table)
    expected = np.load(kit_dir("s2g_singlestream") / "outputs.npz")["gloss_probabilities_log"]
    np.testing.assert_allclose(log_probs, expected[:, list(vocab.order)], atol=1e-4, rtol=0)
    # end to end from the raw frames: the bundle crops as the reference (input.geometry)
    translator = Translator.from_bundle(tmp_path / "b", TranslateOptions(ctc_beam_size=1))
    assert translator.spec.geometry == "reference_center_crop"
    raw = np.load(kit_dir() / "s2g_inputs.npz")["frames"]
    result = translator.translate_frames(raw, fps=25.0)
    decoded = merge_repeated(vocab.vocab.encode(result.gloss.split()))
    expected_ids = golden("s2g_singlestream")["decodes"]["greedy"]["ids"]
    assert vocab.reference_ids(decoded) == expected_ids


@pytest.fixture(scope="module")
def two_run(tmp_path_factory):
    """The TwoStream golden's checkpoint imported into a run folder; (run, gloss table)."""
    torch.set_num_threads(1)
    tmp = tmp_path_factory.mktemp("import_two")
    ckpt = _s2g_checkpoint(tmp / "two.ckpt", "s2g_twostream")
    root = import_dataset(tmp / "ds")
    points = np.load(kit_dir() / "s2g_inputs.npz")["keypoints_133"]
    import_keypoints_pkl = tmp / "kp.pkl"
    import_keypoints_pkl.write_bytes(pickle.dumps({"dev/c1": {"keypoints": points}}))
    import_keypoints(import_keypoints_pkl, root, 210, 260, 25.0)  # TwoStream runs check them
    table = kit_dir("s2g_twostream") / "gloss_vocab.json"
    return import_s2g(ckpt, table, root, tmp / "run", 25.0), table  # reloads, compares itself


def test_imported_two_stream_run_rebuilds_the_reference_options(two_run):
    run, _ = two_run
    assert run.input_spec().keypoints == KEYPOINTS_79  # the reference's order, not ours
    assert run.input_spec().geometry == "reference_resize"  # the whole frame to 224², bilinear
    model = run.load_recognizer()
    heatmaps = model.options.heatmaps
    assert (heatmaps.style, heatmaps.sigma, heatmaps.grid, heatmaps.size) == (
        "reference",
        8.0,
        (260, 210),
        (112, 112),
    )
    assert model.options.decode_head == "ensemble" and model.options.pyramid.enabled


@pytest.mark.slow  # exports the full-size TwoStream network to ONNX (~1.5 min on one thread)
def test_imported_two_stream_bundle_reproduces_the_golden_from_raw_frames(two_run, tmp_path):
    from slt_serve.decoding import ctc_greedy_decode
    from slt_serve.translator import TranslateOptions, Translator

    run, table = two_run
    bundle = tmp_path / "b"
    export = ["export", "model", str(run.run_dir), "--out", str(bundle), "--no-window-check"]
    result = CliRunner().invoke(app, export)  # full size: the whole-window parity takes minutes
    assert result.exit_code == 0, result.output
    translator = Translator.from_bundle(bundle, TranslateOptions(ctc_beam_size=1))
    assert translator.spec.geometry == "reference_resize"
    inputs = np.load(kit_dir() / "s2g_inputs.npz")
    frames, points = inputs["frames"], inputs["keypoints_133"]  # raw: 210×260 RGB, its pixels
    vocab = s2g_vocab(read_gloss_table(table), table)
    outputs = np.load(kit_dir("s2g_twostream") / "outputs.npz")
    expected = outputs["ensemble_last_gloss_probabilities_log"][:, list(vocab.order)]
    log_probs, _, _ = translator.s2g.run(zip(frames, points))  # the Translator's recognizer
    np.testing.assert_allclose(log_probs, expected, atol=1e-4, rtol=0)
    decode = golden("s2g_twostream")["decodes"]["ensemble_last_greedy"]
    assert vocab.reference_ids(ctc_greedy_decode(log_probs)) == decode["ids"]
    # the served glosses: the same decode, less the <pad> class the runtime never serves
    served = translator.translate_frames(frames, fps=25.0, keypoints=points).gloss.split()
    theirs = [g for g in decode["glosses"].split() if g != "<PAD>"]
    assert [g.upper() for g in served] == theirs and len(theirs) < len(decode["ids"])


def test_s2t_import_refuses_a_pruned_folder_of_another_size(tmp_path):
    import shutil

    folder = tmp_path / "mBart_de"
    shutil.copytree(kit_dir("tiny_mbart_de"), folder)
    pairs = json.loads((folder / "map_ids.json").read_text())["pairs"][:2000]
    (folder / "map_ids.json").write_text(json.dumps({"pairs": pairs}))
    s2t = write_reference_checkpoint(
        tmp_path / "s2t.ckpt", procedure_state("s2t_tiny_mbart"), s2g=False
    )
    s2g = _s2g_checkpoint(tmp_path / "s2g.ckpt")
    table = kit_dir("s2g_singlestream") / "gloss_vocab.json"
    with pytest.raises(SltError, match=r"map_ids.json: 2000 pruned ids.*\(2000 vs 2498\)"):
        import_s2t(
            s2t,
            s2g,
            table,
            folder,
            import_dataset(tmp_path / "ds"),
            tmp_path / "runs",
            S2TImportOptions(),
        )
    assert not (tmp_path / "runs").exists()
