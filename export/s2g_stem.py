"""An int8 s2g.onnx cut in two: `s2g_stem.onnx` (frames → the stem's uint8 output) and the
rest (that uint8 tensor → log-probs and features), so the runtime can run the stem over a
window a slice of frames at a time.

Why: with the backbone static int8 (`s2g_quantize`), a window's largest tensor is the
stem's float output (64 channels at 112², 3.2 MB a frame at 224²) on its way to being
quantised (0.8 MB a frame): ~4.6 MB a frame of window and context in all, 1.9 GB at the
default window of a real-size model. The stem's first convolution has no temporal extent
(1×7×7 over each frame) and the quantisation after it is elementwise, so the stem run on
a slice of frames gives that slice's part of the whole run's uint8 tensor exactly; only
the slice's float output is ever held.

The cut is the stem's QuantizeLinear output (the first one in the graph). The rest
graph read the frames' length from the frames' shape (its mask and positions); that
`Shape` is re-pointed at the uint8 tensor's time axis, so the rest graph needs no frames.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import helper

from slt_serve.errors import SltError
from slt_serve.manifest import GraphIO, Graphs
from slt_serve.s2g import STEM_GRAPH

FRAMES = "frames"


def stem_output(model: onnx.ModelProto) -> str:
    """The tensor the stem ends with: the first QuantizeLinear's output."""
    for node in model.graph.node:
        if node.op_type == "QuantizeLinear":
            return node.output[0]
    raise SltError("s2g.onnx has no QuantizeLinear: only an int8 recogniser's stem is cut out")


PER_FRAME_OPS = {"Transpose", "Unsqueeze", "Conv", "Relu", "QuantizeLinear"}


def split(path: Path) -> str | None:
    """Cut `path` (an int8 s2g.onnx) into `s2g_stem.onnx` beside it and the rest in place;
    returns the name of the uint8 tensor between them, or None (and leaves the graph
    whole) where the stem is not made of per-frame operations."""
    model = onnx.load(str(path))
    cut = stem_output(model)  # uint8 (1, C, T, H', W'); declared for the extractor
    model.graph.value_info.append(
        helper.make_tensor_value_info(cut, onnx.TensorProto.UINT8, ["batch", "c", "t", "h", "w"])
    )
    stem = onnx.utils.Extractor(model).extract_model([FRAMES], [cut])
    if not per_frame(stem):
        return None
    _repoint_frame_shapes(model, cut)
    rest_inputs = [cut] + [i.name for i in model.graph.input if i.name != FRAMES]
    outputs = [o.name for o in model.graph.output]
    rest = onnx.utils.Extractor(model).extract_model(rest_inputs, outputs)
    onnx.save(stem, str(path.with_name(STEM_GRAPH)))
    onnx.save(rest, str(path))
    return cut


def per_frame(stem: onnx.ModelProto) -> bool:
    """Whether each frame's part of the stem's output depends on that frame alone: only
    `PER_FRAME_OPS`, and convolutions over (T, H, W) with a temporal kernel and stride of 1."""
    weights = {i.name: tuple(i.dims) for i in stem.graph.initializer}
    for node in stem.graph.node:
        if node.op_type not in PER_FRAME_OPS:
            return False
        if node.op_type == "Conv":
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            kernel = weights.get(node.input[1], ())
            if len(kernel) != 5 or kernel[2] != 1 or attrs.get("strides", [1])[0] != 1:
                return False
            pads = attrs.get("pads", [0] * 6)  # begin then end of each axis; time first
            if pads[0] or pads[len(pads) // 2] or attrs.get("dilations", [1])[0] != 1:
                return False
    return True


def _repoint_frame_shapes(model: onnx.ModelProto, cut: str) -> None:
    """Every `Shape(frames)` → `Shape(cut)` on its time axis (axis 2 of (1, C, T, H, W)), so
    nothing after the cut reads the frames (T, C, H, W)."""
    for i, node in enumerate(model.graph.node):
        if node.op_type != "Shape" or node.input[0] != FRAMES:
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        if attrs.get("start", 0) != 0 or attrs.get("end", None) != 1:
            raise SltError(
                "s2g.onnx reads more of the frames' shape than their number; it cannot be "
                "cut at the stem (export it without int8, or report this)"
            )
        model.graph.node[i].CopyFrom(
            helper.make_node("Shape", [cut], list(node.output), name=node.name, start=2, end=3)
        )


def graphs(path: Path, before: Graphs) -> Graphs:
    """The manifest's `graphs` for s2g.onnx at `path` and its stem beside it."""
    io = {}
    for key, file in (("s2g_stem", path.with_name(STEM_GRAPH)), ("s2g", path)):
        graph = onnx.load(str(file), load_external_data=False).graph
        io[key] = GraphIO(
            inputs=tuple(i.name for i in graph.input), outputs=tuple(o.name for o in graph.output)
        )
    return before.model_copy(update=io)
