"""`--quantize int8` of a recogniser: static int8 S3D (`slt_export.s2g_quantize`), tiny model."""

from __future__ import annotations

import numpy as np
import pytest
import tiny_bundles as tb

from slt_export.bundle import ExportOptions, RecognitionPart, export_bundle
from slt_serve.errors import SltError
from slt_serve.onnx_session import CPU
from slt_serve.s2g import S2GRunner
from slt_serve.translator import TranslateOptions, Translator
from slt_serve.video import write_video

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("calibration")
    paths = []
    for seed in range(3):
        paths.append(folder / f"clip{seed}.mp4")
        write_video(paths[-1], tb.random_video(28 + 8 * seed, seed), tb.FPS)
    return paths


@pytest.fixture(scope="module")
def int8(tmp_path_factory, clips):
    """An S2G bundle (the recogniser alone: quick to export) with an int8 s2g.onnx."""
    part = RecognitionPart(tb.single_stream(), tb.SPEC, tb.vocab(), fps=tb.FPS, ctc_beam_size=5)
    options = ExportOptions(quantize="int8", calibration=tuple(clips), window_frames=8)
    return export_bundle(tmp_path_factory.mktemp("b") / "int8", part, None, options)


def test_int8_quantises_the_backbone_convolutions_and_keeps_the_head_float(int8):
    import onnx

    stem, rest = (onnx.load(int8.path / name).graph for name in ("s2g_stem.onnx", "s2g.onnx"))
    graph = onnx.helper.make_graph(
        [*stem.node, *rest.node], "both", [], [], [*stem.initializer, *rest.initializer]
    )
    int8_weights = {i.name: len(i.dims) for i in graph.initializer if i.data_type == onnx.TensorProto.INT8}  # fmt: skip
    conv = [n for n in graph.node if n.op_type == "Conv"]
    dequantised = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "DequantizeLinear"}
    quantised = [c for c in conv if int8_weights.get(dequantised.get(c.input[1])) == 5]
    float_conv = [c for c in conv if c.input[1] not in dequantised]
    assert len(quantised) > 20  # S3D's 3-D convolutions
    # float: the stem's first conv (reading the 6 input channels) and the head's 1-D convs
    weights = {i.name: tuple(i.dims) for i in graph.initializer}
    assert sorted(len(weights[c.input[1]]) for c in float_conv) == [3, 3, 5]
    assert [weights[c.input[1]][1] for c in float_conv if len(weights[c.input[1]]) == 5] == [6]
    # int8 tensors: 3-D conv weights and their zero points; none of the head (MatMul, 1-D conv)
    assert {r for r in int8_weights.values() if r > 1} == {5}
    q = int8.manifest.quantization
    assert "static int8" in q.method and q.megabytes_after < q.megabytes_before
    assert q.float_same_glosses == "3/3"


def test_int8_stem_runs_apart_a_slice_of_frames_at_a_time(int8):
    """s2g_stem.onnx (frames → the stem's uint8 output) then s2g.onnx (that → log-probs):
    slices of 3 frames give the outputs of one stem run over the window, bit for bit."""
    m = int8.manifest
    assert {"s2g_stem.onnx", "s2g.onnx"} <= set(m.files)
    assert m.graphs.s2g_stem.inputs == ("frames",)
    assert m.graphs.s2g.inputs == (m.graphs.s2g_stem.outputs[0], "first_step")
    runner = Translator.from_bundle(int8.path, TranslateOptions(device="cpu")).s2g
    assert runner.stem is not None
    frames = [(f, None) for f in tb.random_video(21, 7)]
    runner.stem_slice = 3
    sliced = runner.run(iter(frames))
    runner.stem_slice = 1000
    whole = runner.run(iter(frames))
    np.testing.assert_array_equal(sliced[0], whole[0])
    np.testing.assert_array_equal(sliced[1], whole[1])


@pytest.mark.parametrize(
    ("kernel", "pads", "op", "cut"),
    [((1, 7, 7), [0, 3, 3, 0, 3, 3], "Relu", True), ((3, 7, 7), [1, 3, 3, 1, 3, 3], "Relu", False),
     ((1, 7, 7), [0, 3, 3, 0, 3, 3], "Softmax", False)],
)  # fmt: skip
def test_only_a_stem_of_per_frame_operations_is_cut_out(kernel, pads, op, cut):
    from onnx import TensorProto, helper, numpy_helper

    from slt_export.s2g_stem import per_frame

    weight = numpy_helper.from_array(np.zeros((4, 3, *kernel), np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=list(kernel), pads=pads),
        helper.make_node(op, ["y"], ["z"]),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("x", "z")]
    graph = helper.make_graph(nodes, "stem", io[:1], io[1:], [weight])
    assert per_frame(helper.make_model(graph)) is cut


def test_int8_windows_give_one_runs_outputs(int8, clips):
    """Fixed scales: a clip run in windows of 8 + context gives the whole run's outputs."""
    result = int8
    spec = result.manifest.input
    stem = result.path / "s2g_stem.onnx"
    windowed = S2GRunner.open(result.path / "s2g.onnx", spec, [CPU], stem=stem)
    whole = S2GRunner.open(
        result.path / "s2g.onnx", spec.model_copy(update={"window_frames": 64}), [CPU], stem=stem
    )
    frames = [(f, None) for f in tb.random_video(44, 5)]
    got, want = windowed.run(iter(frames)), whole.run(iter(frames))
    assert got[2] == want[2] == 44 and got[0].shape == want[0].shape
    np.testing.assert_allclose(got[0], want[0], atol=1e-5)
    np.testing.assert_allclose(got[1], want[1], atol=1e-5)


def test_int8_bundle_recognises_a_clip(int8, clips):
    translator = Translator.from_bundle(int8.path, TranslateOptions(device="cpu"))
    got = translator.translate(clips[2])
    assert got.gloss_spans is not None and got.timings_ms["s2g"] > 0


def test_int8_without_calibration_clips_is_refused_before_export(tmp_path):
    with pytest.raises(SltError, match="--calibration"):
        tb.s2t_bundle(tmp_path / "q", quantize="int8")
    with pytest.raises(SltError, match="int8-text"):
        tb.s2t_bundle(tmp_path / "q", kind="two_stream", quantize="int8", calibration=("x.mp4",))
    assert not (tmp_path / "q").exists()


def test_cli_refuses_missing_calibration_clips(tmp_path):
    import subprocess
    import sys

    missing = tmp_path / "no-clips"
    command = ["export", "model", str(tmp_path / "run"), "--out", str(tmp_path / "b")]
    command += ["--quantize", "int8", "--calibration", str(missing)]
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *command], capture_output=True, text=True
    )
    assert r.returncode == 2 and f"{missing}: no such file or folder" in r.stderr, r.stderr
