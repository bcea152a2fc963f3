"""slt-serve runtime: sign language video in, text out, with onnxruntime and no PyTorch."""

import os

# onnxruntime's telemetry is off unless the user turned it on: it must be set before
# onnxruntime is imported, and every import of onnxruntime here comes after this package's.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")

__version__ = "0.1.0"

__all__ = ["Result", "GlossSpan", "TranslateOptions", "Translator", "__version__"]


def __getattr__(name: str):
    """`slt_serve.Translator` & co., imported on first use (the CLI need not load onnxruntime)."""
    if name in ("Result", "GlossSpan", "TranslateOptions", "Translator"):
        from slt_serve import translator

        return getattr(translator, name)
    raise AttributeError(f"module 'slt_serve' has no attribute {name!r}")
