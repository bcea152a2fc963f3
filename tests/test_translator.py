"""`slt_serve.Translator`: a bundle translates video without torch, as PyTorch does."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tiny_bundles as tb

from slt_serve.bundle import MANIFEST, load_bundle
from slt_serve.clip_input import network_frames, network_keypoints, normalise
from slt_serve.decoding import ctc_align, ctc_greedy_spans
from slt_serve.errors import SltError
from slt_serve.manifest import InputSpec
from slt_serve.onnx_session import CPU, open_session
from slt_serve.s2g import S2GRunner
from slt_serve.translator import GlossSpan, Result, TranslateOptions, Translator
from slt_serve.video import read_frames, write_video

RUNTIME_MODULES = (
    "slt_serve.translator",
    "slt_serve.bundle",
    "slt_serve.manifest",
    "slt_serve.beam_search",
    "slt_serve.seq2seq",
    "slt_serve.s2g",
    "slt_serve.clip_input",
    "slt_serve.decoding",
    "slt_serve.onnx_session",
    "slt_serve.tokenizer",
)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("v") / "clip.mp4"
    write_video(path, tb.random_video(18), tb.FPS)
    return path


def test_translates_a_video_torch_free_like_pytorch(single, video):
    result, recognizer, model, tok = single
    code = (
        "import json, sys\n"
        f"import {', '.join(RUNTIME_MODULES)}\n"
        "from slt_serve.translator import TranslateOptions, Translator\n"
        f"t = Translator.from_bundle({str(result.path)!r}, TranslateOptions(device='auto'))\n"
        f"r = t.translate({str(video)!r})\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "print(json.dumps({'result': r.to_dict(), 'provider': t.provider}))\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    out = json.loads(run.stdout)
    got = out["result"]
    assert out["provider"] == CPU
    frames = read_frames(video, size=tb.SIZE, fps=tb.FPS)  # what the runtime decoded
    assert (got["gloss"], got["text"]) == tb.torch_translate(recognizer, model, tok, frames)
    assert got["model"] == "single" and got["duration_s"] == pytest.approx(18 / tb.FPS)
    timings = got["timings_ms"]
    assert set(timings) == {
        "decode", "pose", "s2g", "ctc", "encoder", "decoder", "total"
    }  # fmt: skip
    # each step is counted where it runs, once: decoding pulled by s2g is not also s2g's
    assert timings["decode"] > 0 and timings["s2g"] > 0
    assert sum(v for k, v in timings.items() if k != "total") <= timings["total"] + 0.1
    spans = got["gloss_spans"]
    assert [s["gloss"] for s in spans] == got["gloss"].split()
    assert all(0 <= s["start_s"] < s["end_s"] <= got["duration_s"] for s in spans)
    assert [s["start_s"] for s in spans] == sorted(s["start_s"] for s in spans)


def test_translate_frames_resamples_and_resizes_like_training(single):
    result, recognizer, model, tok = single
    translator = Translator.from_bundle(result.path, TranslateOptions(device="cpu"))
    frames = tb.random_video(16, seed=5)
    got = translator.translate_frames(frames, tb.FPS)
    assert (got.gloss, got.text) == tb.torch_translate(recognizer, model, tok, frames)
    # 50 fps in: every other frame is what a 25 fps bundle reads
    doubled = np.repeat(frames, 2, axis=0)
    again = translator.translate_frames(doubled, 2 * tb.FPS)
    assert (again.gloss, again.text) == (got.gloss, got.text)
    assert isinstance(got, Result) and all(isinstance(s, GlossSpan) for s in got.gloss_spans)
    assert json.loads(json.dumps(got.to_dict()))["text"] == got.text


def test_one_translator_serves_concurrent_calls_like_sequential_ones(single):
    from concurrent.futures import ThreadPoolExecutor

    translator = Translator.from_bundle(single[0].path, TranslateOptions(device="cpu"))
    videos = [tb.random_video(12 + 4 * i, seed=10 + i) for i in range(4)]

    def run(frames):
        r = translator.translate_frames(frames, tb.FPS)
        return r.gloss, r.text, r.gloss_spans, r.duration_s

    alone = [run(v) for v in videos]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(run, videos)) == alone


def test_refuses_long_videos_bad_frames_and_gloss_input(single, video):
    path = single[0].path
    with pytest.raises(SltError, match="over the 0.5 s limit"):
        Translator.from_bundle(path, TranslateOptions(max_seconds=0.5)).translate(video)
    translator = Translator.from_bundle(path)
    with pytest.raises(SltError, match="uint8"):
        translator.translate_frames(np.zeros((4, 8, 8, 3), np.float32), 25.0)
    with pytest.raises(SltError, match="reads video"):
        translator.translate_gloss("REGEN MORGEN")
    with pytest.raises(SltError, match="device"):
        Translator.from_bundle(path, TranslateOptions(device="tpu"))
    with pytest.raises(SltError, match="beam_size"):
        Translator.from_bundle(path, TranslateOptions(beam_size=0))


def _copy(single, tmp_path):
    target = tmp_path / "copy"
    shutil.copytree(single[0].path, target)
    return target


def test_tampered_or_truncated_files_are_refused(single, tmp_path):
    bundle = _copy(single, tmp_path)
    decoder = bundle / "decoder.onnx"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    with pytest.raises(SltError, match="sha256 differs"):
        Translator.from_bundle(bundle)
    load_bundle(bundle, verify=False)  # sizes still match: only the hash tells
    decoder.write_bytes(bytes(data[:-100]))
    with pytest.raises(SltError, match="truncated"):
        load_bundle(bundle, verify=False)
    (bundle / "decoder.onnx").unlink()
    with pytest.raises(SltError, match="missing"):
        load_bundle(bundle)


def test_manifest_format_is_checked(single, tmp_path):
    bundle = _copy(single, tmp_path)
    manifest = json.loads((bundle / MANIFEST).read_text())
    (bundle / MANIFEST).write_text(json.dumps(dict(manifest, format_version=99)))
    with pytest.raises(SltError, match="newer.*upgrade"):
        load_bundle(bundle)
    (bundle / MANIFEST).write_text("{not json")
    with pytest.raises(SltError, match="not valid JSON"):
        load_bundle(bundle)
    with pytest.raises(SltError, match="no manifest.json"):
        load_bundle(tmp_path)
    with pytest.raises(SltError, match="no bundle folder"):
        load_bundle(tmp_path / "nowhere")


def test_long_inputs_run_in_windows_with_the_same_step_count(single):
    result = single[0]
    spec = result.manifest.input
    session = open_session(result.path / "s2g.onnx", [CPU])
    frames = [f for f in tb.random_video(50, seed=7)]
    whole = S2GRunner(session, spec)
    lp, feat, n = whole.run((f, None) for f in frames)
    direct = whole.run_clip(normalise(np.stack(frames), spec))
    np.testing.assert_array_equal(lp, direct[0])  # short clips run whole
    windowed = S2GRunner(session, spec.model_copy(update={"window_frames": 16}))
    wlp, wfeat, wn = windowed.run((f, None) for f in frames)
    assert n == wn == 50 and wlp.shape == lp.shape == (13, len(tb.vocab()))
    assert wfeat.shape == feat.shape and np.isfinite(wlp).all()
    with pytest.raises(SltError, match="multiple of 4"):
        S2GRunner(session, spec.model_copy(update={"window_frames": 10}))


def test_windows_with_40_frames_of_context_give_the_whole_clips_outputs_onnx(single):
    result = single[0]
    spec = result.manifest.input
    assert spec.context_frames == 40  # the export's default covers the receptive field
    assert "first_step" in result.manifest.graphs.s2g.inputs
    session = open_session(result.path / "s2g.onnx", [CPU])
    frames = list(tb.random_video(100, seed=3))

    def run(window: int):
        runner = S2GRunner(session, spec.model_copy(update={"window_frames": window}))
        return runner.run((f, None) for f in frames)[:2]

    (lp, feat), (wlp, wfeat) = run(128), run(32)  # one run; 4 windows of 32 + 40 each side
    np.testing.assert_allclose(wlp, lp, atol=1e-5, rtol=0)
    np.testing.assert_allclose(wfeat, feat, atol=1e-5, rtol=0)


class _TorchS2G:
    """A SingleStream recognizer's s2g graph (PyTorch) behind onnxruntime's session calls."""

    def __init__(self, model, restart_positions: bool = False) -> None:
        from slt_export.s2g_onnx import INPUTS_SINGLE, graph_for

        self.graph, self.names = graph_for(model), INPUTS_SINGLE
        self.restart_positions = restart_positions  # as graphs without first_step

    def get_inputs(self):
        return [type("Input", (), {"name": n}) for n in self.names]

    def run(self, outputs, feeds):
        import torch

        first = 0 if self.restart_positions else int(feeds["first_step"])
        with torch.no_grad():
            out = self.graph(torch.from_numpy(feeds["frames"]), torch.tensor(first))
        return [o.numpy() for o in out]


def test_a_step_reads_frames_4j_minus_39_to_4j_plus_39_and_its_clip_position():
    """S3D's 4 blocks and the visual head's two k=3 convolutions: a 79-frame temporal
    receptive field. With BatchNorm statistics set (a random S3D's outputs otherwise hardly
    depend on the frames), 40 frames of context give the whole clip's outputs; 32 do not,
    nor windows whose positional encoding restarts at 0."""
    import torch

    from slt_training.models.recognition import SingleStreamOptions, SingleStreamRecognizer

    torch.manual_seed(0)
    options = SingleStreamOptions(head=tb.HEAD, frozen_blocks=0, in_channels=6, width=0.25)
    model = SingleStreamRecognizer(options, 12)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d | torch.nn.BatchNorm3d):
            m.momentum = None  # running statistics: the average of the pass below
    with torch.no_grad():
        model.train()(torch.randn(1, 6, 32, 32, 32), torch.tensor([32]))
    model.eval()
    spec = InputSpec(fps=25.0, frame_size=32, input_size=32, mean=(0.5,) * 3, std=(0.5,) * 3, motion_channels=True)  # fmt: skip
    frames = list(np.random.default_rng(5).integers(0, 256, (96, 32, 32, 3), dtype=np.uint8))

    def features(window: int, context: int, restart: bool = False) -> np.ndarray:
        update = {"window_frames": window, "context_frames": context}
        runner = S2GRunner(_TorchS2G(model, restart), spec.model_copy(update=update))
        return runner.run((f, None) for f in frames)[1]

    whole = features(128, 0)
    assert whole.shape == (24, tb.HIDDEN)
    np.testing.assert_allclose(features(32, 40), whole, atol=2e-4, rtol=0)  # conv float noise
    assert np.abs(features(32, 32) - whole).max() > 1e-3  # the float noise above: ~3e-5
    assert np.abs(features(32, 40, restart=True) - whole).max() > 1e-2


def test_clip_input_matches_training_preprocessing():
    from slt_training.data.s2g_data import ClipOptions, crop_box, crop_resize, to_input

    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (5, 80, 80, 3), dtype=np.uint8)
    spec = InputSpec(
        fps=25.0, frame_size=80, input_size=64, mean=(0.4, 0.5, 0.6), std=(0.2, 0.3, 0.4),
        motion_channels=True, eval_crop=0.8, keypoints=(1, 3),
    )  # fmt: skip
    options = ClipOptions(
        frame_size=80, input_size=64, mean=spec.mean, std=spec.std, motion_channels=True,
        eval_crop=0.8,
    )  # fmt: skip
    box = crop_box(80, rng, None, 0.8)
    want_rgb = crop_resize(frames, box, 64)
    np.testing.assert_array_equal(network_frames(frames, spec), want_rgb)
    np.testing.assert_allclose(normalise(want_rgb, spec), to_input(want_rgb, options).permute(1, 0, 2, 3).numpy(), atol=1e-6)  # fmt: skip
    # uint8 frames take a lookup table; float ones (reference_resize) the formula: same bits
    np.testing.assert_array_equal(normalise(want_rgb, spec), normalise(want_rgb.astype(np.float32), spec))  # fmt: skip
    points = rng.uniform(0, 200, (5, 4, 3)).astype(np.float32)
    got = network_keypoints(points, 200, 160, spec)
    x0, y0, w, h = box
    want = points[:, [1, 3]].copy()
    want[..., 0] = (want[..., 0] * 80 / 200 - x0) * 64 / w
    want[..., 1] = (want[..., 1] * 80 / 160 - y0) * 64 / h
    np.testing.assert_allclose(got, want, rtol=1e-6)


def test_ctc_alignment_agrees_with_greedy_spans():
    rng = np.random.default_rng(0)
    for seed in range(20):
        logits = rng.standard_normal((12, 6)) * 3
        logits[rng.integers(0, 12, 4), 0] += 4  # some blanks
        lp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        greedy = ctc_greedy_spans(lp)
        aligned = ctc_align(lp, [s.token for s in greedy])
        assert aligned == greedy, seed
    assert ctc_align(lp, []) == []
    with pytest.raises(SltError, match="cannot be aligned"):
        ctc_align(lp[:2], [1, 1, 1])


def test_threads_0_follows_omp_num_threads(monkeypatch, s2t_bundle):
    """threads 0: OMP_NUM_THREADS when it is a positive number, else onnxruntime's default."""
    from slt_serve.onnx_session import CPU, intra_op_threads, open_session

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert (intra_op_threads(0), intra_op_threads(2)) == (3, 2)
    session = open_session(s2t_bundle / "encoder.onnx", [CPU])
    assert session.get_session_options().intra_op_num_threads == 3
    for value in ("0", "two", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", value)
        assert intra_op_threads(0) == 0
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert intra_op_threads(0) == 0
