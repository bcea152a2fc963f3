"""One call to the dynamo ONNX exporter, as every graph of a bundle is exported."""

from __future__ import annotations

import logging
import warnings

import torch
from torch import nn

from slt_serve.errors import SltError


def export_graph(
    module: nn.Module,
    example: tuple,
    input_names: list[str],
    output_names: list[str],
    dynamic_shapes: dict,
    opset: int | None = None,
):
    """`module` as an ONNX ModelProto (`torch.onnx.export(..., dynamo=True)`, optimised).

    The dynamo exporter keeps symbolic axes (time, source length, cache length)
    dynamic; the legacy one freezes attention's sequence length.
    """
    for name in ("onnx_ir", "onnxscript", "torch.onnx", "torch.export"):  # their INFO drowns ours
        logging.getLogger(name).setLevel(logging.WARNING)
    # "torchvision is not installed. Skipping torchvision::nms": we never use torchvision
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with torch.no_grad(), warnings.catch_warnings():
        # one note per axis shared by several inputs ("axis name … will not be used")
        warnings.filterwarnings("ignore", message=".*axis name", category=UserWarning)
        program = torch.onnx.export(
            module,
            example,
            dynamo=True,
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=dynamic_shapes,
            opset_version=opset,
            optimize=True,
            verbose=False,
        )
    if program is None:
        raise SltError("torch.onnx.export returned no program; upgrade torch and onnxscript")
    return program.model_proto
