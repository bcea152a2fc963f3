"""Static int8 of s2g.onnx: the S3D backbone as int8 (QDQ), calibrated on clips given at export.

Why static and not dynamic: onnxruntime's CPU provider runs a QDQ convolution as
QLinearConv (VNNI/AMX int8 GEMMs), about 0.4 of the float graph's CPU time at S3D's real
size (benchmarks/runtime_real.py), and the int8 tensors between the layers are a
quarter of the float ones. Dynamic int8 quantises only MatMul/Gemm, and scales by each
run's range, so a window would not give one run's outputs; here every scale is fixed
at export (the MinMax range over the calibration clips), so windows still do
(`slt_serve.s2g`).

What is quantised: the nodes up to the backbone's last 3-D convolution (Conv with
per-channel int8 weights, uint8 activations, and the MaxPool / Concat / Relu between
them, so tensors stay int8 through the inception blocks), but for the stem's first
convolution, which reads the frames' 3 (or 6) channels: as QLinearConv it unfolds
whole uint8 frames 147 wide, the run's largest buffer, and is slower than float (at
real size, 144 frames, 1 thread: peak 825 MB over the loaded session with it int8, 552
without, 662 all float; CPU time 0.43 of float with it, 0.32 without). The visual head
(its 1-D convolutions, attention, classifier, log-softmax) stays float: quantising it
too saved little and moved more argmaxes.

Calibration: the first `CALIBRATION_FRAMES` frames of up to `CALIBRATION_CLIPS` clips,
decoded and preprocessed as the runtime does (`S2GRunner.prepare`). The agreement
reported is how many of those clips, run whole through the runtime, give the same CTC
glosses with the int8 graph as with the float one.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from slt_serve.clip_input import normalise
from slt_serve.decoding import ctc_decode
from slt_serve.errors import SltError
from slt_serve.manifest import InputSpec
from slt_serve.onnx_session import CPU
from slt_serve.s2g import S2GRunner
from slt_serve.video import iter_frames

log = logging.getLogger(__name__)

CALIBRATION_CLIPS = 8  # clips whose activations set the int8 ranges
CALIBRATION_FRAMES = 64  # frames of each (a whole clip's range at a fraction of the cost)
OP_TYPES = ["Conv", "MaxPool", "Concat", "Relu"]  # the backbone's ops, quantised together
METHOD = (
    "onnxruntime static int8 QDQ of s2g.onnx's S3D backbone (per-channel Conv weights, "
    "MinMax-calibrated uint8 activations; the stem's first conv and the head float) + dynamic "
    "int8 MatMul/Gemm weights of the encoder and decoder"
)
TEXT_METHOD = "onnxruntime dynamic int8 (MatMul, Gemm weights; encoder and decoder)"


def clip_frames(path: Path, spec: InputSpec, max_frames: int | None = None) -> list[np.ndarray]:
    """A clip's frames at the bundle's rate, decoded as `Translator.translate` decodes them."""
    size = spec.frame_size if spec.geometry == "square" else None
    return list(iter_frames(path, size, spec.fps, max_frames))


STEM_CHANNELS = 8  # a 3-D conv reading this few channels (the frames') stays float


def float_nodes(model) -> list[str]:
    """Names of the nodes left float: the 3-D convolutions reading the frames' few channels
    and every node after the last 3-D convolution (the visual head)."""
    dims = {i.name: tuple(i.dims) for i in model.graph.initializer}
    nodes = list(model.graph.node)
    conv3d = [i for i, n in enumerate(nodes) if n.op_type == "Conv" and len(dims.get(n.input[1], ())) == 5]  # fmt: skip
    if not conv3d:
        raise SltError("s2g.onnx has no 3-D convolution to quantise; export it float")
    stem = [nodes[i].name for i in conv3d if dims[nodes[i].input[1]][1] <= STEM_CHANNELS]
    return stem + [n.name for n in nodes[conv3d[-1] + 1 :]]


def check_calibration(kind: str, clips: Sequence[Path]) -> None:
    """Refuse, before anything is exported, what static int8 of s2g.onnx cannot do."""
    if kind == "two_stream":
        raise SltError(
            "--quantize int8 of a two_stream recogniser needs keypoints to calibrate on, not "
            "supported yet: use --quantize int8-text (s2g.onnx stays float)"
        )
    if not clips:
        raise SltError(
            "--quantize int8 calibrates the recogniser's int8 ranges on clips: give "
            "--calibration FOLDER of videos or export a run whose dev clips are here, or use "
            "--quantize int8-text (s2g.onnx stays float)"
        )
    missing = [str(c) for c in clips if not Path(c).exists()]
    if missing:
        raise SltError(f"calibration clip {missing[0]} not found; give existing videos")


def quantize_s2g(path: Path, spec: InputSpec, clips: Sequence[Path]) -> None:
    """s2g.onnx at `path`, replaced by its static int8 version calibrated on `clips`."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):  # one clip's first frames at a time
        def __init__(self) -> None:
            self.clips = iter(Path(c) for c in clips[:CALIBRATION_CLIPS])

        def get_next(self) -> dict | None:
            clip = next(self.clips, None)
            if clip is None:
                return None
            frames = [runner.prepare(f)[0] for f in clip_frames(clip, spec, CALIBRATION_FRAMES)]
            feeds = {"frames": normalise(np.stack(frames), spec)}
            if "first_step" in inputs:  # graphs exported before it have no such input
                feeds["first_step"] = np.asarray(0, np.int64)
            return feeds

    runner = S2GRunner.open(path, spec, [CPU])  # its preprocessing, as served
    inputs = runner.input_names
    check_calibration("two_stream" if runner.two_stream else "single_stream", clips)
    del runner.session
    with tempfile.TemporaryDirectory(prefix="s2g-int8-", dir=path.parent) as tmp:
        pre = Path(tmp) / "pre.onnx"
        # onnx shape inference + onnxruntime's basic fusions (symbolic shape inference
        # cannot follow the head's dynamic positions; it is not needed for Conv)
        quant_pre_process(str(path), str(pre), skip_symbolic_shape=True)
        keep_float = float_nodes(onnx.load(pre, load_external_data=False))
        quantize_static(
            str(pre),
            str(Path(tmp) / "int8.onnx"),
            Reader(),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=OP_TYPES,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=keep_float,
            calibrate_method=CalibrationMethod.MinMax,
        )
        (Path(tmp) / "int8.onnx").replace(path)


def same_glosses(
    float_path: Path,
    int8_path: Path,
    spec: InputSpec,
    clips: Sequence[Path],
    beam: int,
    limit: int = CALIBRATION_CLIPS,
) -> tuple[int, int]:
    """(clips whose glosses the int8 graph gives as the float one, clips compared): each of
    the first `limit` clips run whole through the runtime, in its windows."""
    runners = [S2GRunner.open(p, spec, [CPU]) for p in (float_path, int8_path)]
    same = n = 0
    for clip in clips[:limit]:
        frames = clip_frames(Path(clip), spec)
        glosses = [ctc_decode(r.run((f, None) for f in frames)[0], beam) for r in runners]
        same += glosses[0] == glosses[1]
        n += 1
    return same, n
