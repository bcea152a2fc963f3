"""S2G checkpoints trained with the reference code: safe loading, key mapping, and the
kit's goldens (../shared/data/reference-slrt/) reproduced in PyTorch, from the
reference's preprocessed tensors and from raw frames/keypoints."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pytest
import torch
from reference_kit import golden, kit_dir, procedure_state, write_reference_checkpoint

from slt_serve.decoding import ctc_greedy_decode
from slt_serve.errors import SltError
from slt_training.models.recognition import RecognitionOutput, decode_glosses, ensemble_log_probs
from slt_training.reference.checkpoint import read_checkpoint
from slt_training.reference.preprocess import (
    KEYPOINTS_79,
    ReferenceInputOptions,
    reference_video,
)
from slt_training.reference.s2g import build_recognizer
from slt_training.reference.vocab import read_gloss_table, s2g_vocab

ATOL = 1e-4  # the kit's advice for S2G log-probs and features (observed ≤ 3e-6)
POOLED_ATOL = 1e-5  # the 832-d pooled backbone features


def _import_golden(tmp_path_factory, golden_name):
    """A golden's checkpoint written from the seed procedure, then imported: the checkpoint's
    path, its vocabulary and the recognizer built from both."""
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp(golden_name) / "best.ckpt"
    write_reference_checkpoint(path, procedure_state(golden_name), s2g=True)
    vocab_file = kit_dir(golden_name) / "gloss_vocab.json"
    vocab = s2g_vocab(read_gloss_table(vocab_file), vocab_file)
    return path, vocab, build_recognizer(read_checkpoint(path), vocab, str(vocab_file))


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    """The SingleStream golden: checkpoint written from the seed procedure, imported."""
    return _import_golden(tmp_path_factory, "s2g_singlestream")


def test_s2g_checkpoint_needs_exactly_the_numpy_allow_list(single):
    path = single[0]
    with pytest.raises(Exception, match="numpy"):
        torch.load(path, map_location="cpu", weights_only=True)  # the reason for the allow-list
    checkpoint = read_checkpoint(path)
    assert checkpoint.kind == "s2g_single" and isinstance(checkpoint.best_score, float)
    assert len(checkpoint.state) == golden("s2g_singlestream")["state_dict"]["n_keys"]


def _rename_numpy_module(path, out):
    """The same checkpoint as numpy 1 (the reference's pin) names its scalar global."""
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("data.pkl"):
                assert b"numpy._core.multiarray" in data
                data = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
            dst.writestr(item, data)
    return out


def test_numpy1_checkpoint_loads_and_other_globals_are_refused(single, tmp_path):
    old = _rename_numpy_module(single[0], tmp_path / "numpy1.ckpt")
    assert read_checkpoint(old).kind == "s2g_single"
    evil = io.BytesIO()
    torch.save({"model_state": {}, "best_score": np.float64(1.0), "x": io.BytesIO}, evil)
    (tmp_path / "evil.ckpt").write_bytes(evil.getvalue())
    with pytest.raises(SltError, match="cannot read it as a reference checkpoint"):
        read_checkpoint(tmp_path / "evil.ckpt")


def test_mismatched_vocabulary_is_refused_with_both_sizes(single):
    path = single[0]
    other = kit_dir("s2g_twostream") / "gloss_vocab.json"  # TwoStream's 1124 glosses
    vocab = s2g_vocab(read_gloss_table(other), other)
    with pytest.raises(SltError, match=r"gloss_vocab.json: 1124 glosses.* \(1124 vs 1094\)"):
        build_recognizer(read_checkpoint(path), vocab, str(other))


def _run_single(model, video):
    with torch.no_grad():
        features = model.backbone.forward_pooled(video)
        out = model(video, torch.tensor([video.shape[2]]))
    return features[0].numpy(), out


def _check_single(model, vocab, video):
    outputs = np.load(kit_dir("s2g_singlestream") / "outputs.npz")
    features, out = _run_single(model, video)
    order = list(vocab.order)
    np.testing.assert_allclose(features, outputs["head_rgb_input"], atol=POOLED_ATOL, rtol=0)
    for ours, theirs in (
        (out.gloss_logits, "gloss_logits"),
        (out.gloss_log_probs, "gloss_probabilities_log"),
    ):
        np.testing.assert_allclose(ours[0].numpy(), outputs[theirs][:, order], atol=ATOL, rtol=0)
    np.testing.assert_allclose(out.gloss_features[0].numpy(), outputs["gloss_feature"], atol=ATOL)
    decoded = vocab.vocab.decode(model.decode(out)[0])
    expected = golden("s2g_singlestream")["decodes"]["greedy"]["glosses"]
    assert " ".join(decoded).upper() == expected


def test_single_stream_from_preprocessed_tensors(single):
    _, vocab, model = single
    video = torch.from_numpy(np.load(kit_dir("s2g_singlestream") / "preprocessed.npz")["video"])
    _check_single(model, vocab, video)


def test_single_stream_from_raw_frames(single):
    _, vocab, model = single
    frames = np.load(kit_dir() / "s2g_inputs.npz")["frames"]
    video = reference_video(frames, ReferenceInputOptions(geometry="center_crop"))
    stored = np.load(kit_dir("s2g_singlestream") / "preprocessed.npz")["video"]
    assert np.array_equal(video.numpy(), stored)  # the reference's four steps, bit for bit
    _check_single(model, vocab, video)


def test_keypoint_subset_is_the_kits():
    stored = np.load(kit_dir("s2g_twostream") / "inputs.npz")["keypoint_index_79"]
    assert tuple(int(i) for i in stored) == KEYPOINTS_79


@pytest.fixture(scope="module")
def two(tmp_path_factory):
    """The TwoStream golden: every head's output from raw frames and keypoints."""
    _, vocab, model = _import_golden(tmp_path_factory, "s2g_twostream")
    inputs = np.load(kit_dir() / "s2g_inputs.npz")
    frames, keypoints = inputs["frames"], inputs["keypoints_133"]
    video = reference_video(frames, ReferenceInputOptions(geometry="resize"))
    points = torch.from_numpy(keypoints[:, list(KEYPOINTS_79)]).unsqueeze(0)
    raw_size = (frames.shape[2], frames.shape[1])
    with torch.no_grad():
        heads, steps, aux = model.head_outputs(
            video, points, torch.tensor([video.shape[2]]), raw_size, pyramid=True
        )
        heatmaps = model.heatmaps(points, torch.tensor([video.shape[2]]), raw_size)
    ensemble = ensemble_log_probs([head.log_probs for head in heads.values()])
    return vocab, model, video, heatmaps, heads, aux, ensemble


@pytest.mark.slow  # one TwoStream pass at PHOENIX shape: ~25 s on one thread
def test_two_stream_preprocessing_matches_the_reference(two):
    _, _, video, heatmaps, *_ = two
    stored = np.load(kit_dir("s2g_twostream") / "preprocessed.npz")
    assert np.array_equal(video[:, :, :4].numpy(), stored["video_first4"])  # bit for bit
    # heatmaps: the separable drawing equals the reference's up to float rounding
    np.testing.assert_allclose(
        heatmaps[:, :, :4].numpy(), stored["heatmaps_first4"], atol=1e-6, rtol=0
    )
    sums = heatmaps.double().sum(dim=(0, 1, 3, 4)).numpy()
    np.testing.assert_allclose(sums, stored["heatmaps_frame_sum"], rtol=1e-8)


@pytest.mark.slow  # one TwoStream pass at PHOENIX shape: ~25 s on one thread
def test_two_stream_heads_from_raw_frames_and_keypoints(two):
    vocab, model, _, _, heads, aux, ensemble = two
    outputs = np.load(kit_dir("s2g_twostream") / "outputs.npz")
    order = list(vocab.order)
    names = {"rgb": "rgb", "keypoint": "keypoint", "joint": "fuse"}
    for ours, theirs in names.items():
        for field, suffix in (("logits", "gloss_logits"), ("log_probs", "gloss_probabilities_log")):
            value = getattr(heads[ours], field)[0].numpy()
            np.testing.assert_allclose(
                value, outputs[f"{theirs}_{suffix}"][:, order], atol=ATOL, rtol=0
            )
    np.testing.assert_allclose(
        heads["joint"].features[0].numpy(), outputs["fuse_gloss_feature"], atol=ATOL, rtol=0
    )
    for stream in ("rgb", "keypoint"):
        for i, block in enumerate((2, 3)):
            value = aux[f"{stream}_block{block}"][0].log_probs[0].numpy()
            expected = outputs[f"{stream}_aux_{i}_gloss_probabilities_log"][:, order]
            np.testing.assert_allclose(value, expected, atol=ATOL, rtol=0)
    expected = outputs["ensemble_last_gloss_probabilities_log"][:, order]
    np.testing.assert_allclose(ensemble[0].numpy(), expected, atol=ATOL, rtol=0)


@pytest.mark.slow  # one TwoStream pass at PHOENIX shape: ~25 s on one thread
def test_two_stream_greedy_decodes_of_every_head(two):
    vocab, model, _, _, heads, aux, ensemble = two
    decodes = golden("s2g_twostream")["decodes"]
    ensemble_early = torch.log_softmax(
        torch.logaddexp(aux["rgb_block3"][0].log_probs, aux["keypoint_block3"][0].log_probs), -1
    )
    log_probs = {
        "rgb": heads["rgb"].log_probs,
        "keypoint": heads["keypoint"].log_probs,
        "fuse": heads["joint"].log_probs,
        "ensemble_last": ensemble,
        "ensemble_early": ensemble_early,
    }
    for stream in ("rgb", "keypoint"):
        for i, block in enumerate((2, 3)):
            log_probs[f"{stream}_aux_{i}"] = aux[f"{stream}_block{block}"][0].log_probs
    for name, value in log_probs.items():
        ids = vocab.reference_ids(ctc_greedy_decode(value[0].numpy()))
        assert ids == decodes[f"{name}_greedy"]["ids"], name


def test_reference_decoding_never_repeats_a_gloss():
    # best path A A <blank> A B: CTC gives A A B, the reference's decoder A B
    steps = [1, 1, 0, 1, 2]
    log_probs = torch.full((1, 5, 3), -10.0)
    log_probs[0, torch.arange(5), torch.tensor(steps)] = 0.0
    out = RecognitionOutput(log_probs, log_probs, log_probs, torch.tensor([5]))
    assert decode_glosses(out) == [[1, 1, 2]]
    assert decode_glosses(out, merge_repeats=True) == [[1, 2]]
    assert decode_glosses(out, beam_size=3, merge_repeats=True) == [[1, 2]]
