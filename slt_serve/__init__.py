"""slt-serve runtime: sign language video in, text out, with onnxruntime and no PyTorch."""

__version__ = "0.1.0"
