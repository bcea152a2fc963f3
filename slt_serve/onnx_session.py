"""onnxruntime sessions for a bundle's graphs: which provider, how many threads, clear errors.

onnxruntime's telemetry stays off: `slt_serve/__init__.py` sets `ORT_DISABLE_TELEMETRY=1`
(unless already set) before any onnxruntime import, and sessions opened here also call
`disable_telemetry_events()`.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
from pathlib import Path

from slt_serve.errors import SltError

DEVICES = ("auto", "cpu", "cuda")
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def providers_for(device: str) -> list[str]:
    """onnxruntime providers for "auto" (CUDA when this onnxruntime build has it), "cuda", "cpu"."""
    import onnxruntime as ort

    if device not in DEVICES:
        raise SltError(f"device {device!r} unknown; choose one of {', '.join(DEVICES)}")
    available = ort.get_available_providers()
    if device == "cpu":
        return [CPU]
    if CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        raise SltError(
            "device cuda: this onnxruntime has no CUDAExecutionProvider; install onnxruntime-gpu "
            "(pip uninstall onnxruntime first) or use device auto/cpu"
        )
    return [CPU]


def intra_op_threads(threads: int) -> int:
    """`threads`, or for 0 the `OMP_NUM_THREADS` environment variable when it is a positive
    number (what PyTorch and a container's CPU quota set), else 0: onnxruntime's default, a
    thread per core, which oversubscribes a CPU shared by several processes."""
    if threads:
        return threads
    value = os.environ.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else 0


def open_session(
    path: str | os.PathLike, providers: list[str], threads: int = 0, arena: bool = True
):
    """An inference session on `path`; `threads` intra-op threads (0: `intra_op_threads`).

    arena=False: no CPU memory arena, so each run's tensors go back to the system when the
    run ends instead of staying reserved at the largest run's size (`S2GRunner`: a window's
    activations, hundreds of MB at 224²). The decoder keeps its arena: its steps reuse the
    cache-sized buffers and run ~15 % faster; `Seq2Seq.release_memory` shrinks it after
    each search."""
    import onnxruntime as ort

    ort.disable_telemetry_events()
    options = ort.SessionOptions()
    options.intra_op_num_threads = intra_op_threads(threads)
    options.enable_cpu_mem_arena = arena
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(str(Path(path)), options, providers=providers)
    except Exception as e:  # onnxruntime raises its own untyped errors
        raise SltError(f"{path}: onnxruntime cannot load it ({e}); re-export the bundle") from None
    release_free_memory()  # the parsed graph and the weights before prepacking
    return session


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None (another C library, another system)."""
    name = ctypes.util.find_library("c")
    try:
        return getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    except OSError:
        return None


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc `malloc_trim`; elsewhere a
    no-op). glibc keeps what was freed below its heap's top: loading a graph leaves its
    parsed protobuf and the weights from before prepacking (~135 MB for a 194 MB int8
    decoder at real size), and a recogniser window its smaller tensors, counted in the
    process's RSS until the next request happens to reuse them."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)
