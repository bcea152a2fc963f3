"""`slt doctor`: is this machine (and a dataset root) ready, and if not, what to run.

Environment checks read installed versions through `importlib.metadata` and
ask the tools themselves: `nvidia-smi` for the GPU, onnxruntime for its
providers (a CUDA provider is tried on a one-node model, because a listed
provider whose CUDA/cuDNN libraries do not load silently falls back to CPU),
PyAV by encoding and decoding a short clip. torch is never imported here
(slt_serve must stay torch-free): its CUDA view comes from a `python -c`
subprocess, only when torch is installed.

Only the environment is checked here. A dataset root (`slt doctor DATASET`) is read by
the training stack, which knows its files (`slt_training.data.check.dataset_state`); its `slt`
plugin hands that function over with `provide_dataset_checks`, since slt_serve may not
import the training stack.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from slt_serve.errors import SltError
from slt_serve.extras import DISTRIBUTION, requirements

OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
# Free disk below which preparing and training a corpus runs out: the PHOENIX-2014T frames
# cache at 256² is ~2.5 GB, an S2G checkpoint with optimizer state ~0.3 GB, mBART-large 2.4 GB.
DISK_FAIL_GB, DISK_WARN_GB = 2.0, 20.0
TESTED_TRANSFORMERS_MAJORS = (4, 5)
# Distributions that provide the same module as a requirement (the GPU build of onnxruntime,
# the other OpenCV wheels): any one of them satisfies it.
PROVIDES = {
    "onnxruntime": ("onnxruntime-gpu", "onnxruntime-directml", "onnxruntime-openvino"),
    "opencv-python-headless": (
        "opencv-python",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
    ),
}
TORCH_PROBE = (
    "import json, torch; c = torch.cuda.is_available(); print(json.dumps({"
    "'version': torch.__version__, 'cuda': torch.version.cuda, 'available': c, "
    "'devices': [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if c else [], "
    "'bf16': bool(c and torch.cuda.is_bf16_supported())}))"
)


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, how it went, and what to run about it."""

    name: str
    status: str  # ok | warn | fail | info
    detail: str
    fix: str = ""


@dataclass(frozen=True)
class DatasetState:
    """What a dataset root holds, read from its files, and the preparation step to run next."""

    checks: list[Check]
    next_step: str


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    next_step: str | None = None

    @property
    def failed(self) -> bool:
        return any(c.status == FAIL for c in self.checks)


# --- versions ---------------------------------------------------------------------------------


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _provider_of(name: str) -> tuple[str, str] | None:
    """(distribution, version) installed for a requirement, counting drop-in builds."""
    for dist in (name, *PROVIDES.get(name.lower(), ())):
        version = _installed(dist)
        if version is not None:
            return dist, version
    return None


def _satisfies(version: str, spec: SpecifierSet) -> bool:
    try:
        return Version(version) in spec or not spec
    except InvalidVersion:
        return True  # a local build with an odd version string: trust it


def _pip_fix(req: Requirement, extra: str | None) -> str:
    spec = f"{req.name}{req.specifier}"
    if req.name == "torch":
        return f"pip install '{spec}' (the CPU or CUDA build you want, before the rest)"
    return f"pip install '{spec}'" + (f"  (or: pip install 'slt-serve[{extra}]')" if extra else "")


def check_python() -> Check:
    spec = SpecifierSet(metadata.metadata(DISTRIBUTION).get("Requires-Python") or "")
    here = ".".join(map(str, sys.version_info[:3]))
    if _satisfies(here, spec):
        return Check("python", OK, f"{here} ({sys.executable})")
    return Check("python", FAIL, f"{here}, slt-serve needs {spec}", f"use a Python {spec}")


def check_packages() -> list[Check]:
    """Every declared requirement: core ones must be met; an extra is judged as a whole."""
    by_extra: dict[str | None, list[Requirement]] = {}
    for extra, req in requirements():
        by_extra.setdefault(extra, []).append(req)
    core = by_extra.pop(None, [])
    bad = _unmet(core)
    checks = [
        Check(
            "core packages",
            FAIL if bad else OK,
            f"{len(core) - len(bad)} of {len(core)} requirements met: "
            + _version_line(("numpy", "onnxruntime", "av")),
        )
    ]
    checks += [Check(r.name, FAIL, what, _pip_fix(r, None)) for r, what in bad]
    order = ("train", "vi", "zh", "demo", "dev")
    for extra, reqs in sorted(
        by_extra.items(),
        key=lambda kv: (kv[0] not in order, order.index(kv[0]) if kv[0] in order else 0, kv[0]),
    ):
        if extra == "gpu":
            continue  # judged with the onnxruntime providers
        label = f"[{extra}] extra"
        if not any(_provider_of(r.name) for r in reqs):
            if extra == "train":
                fix = "pip install torch (the build you want) && pip install 'slt-serve[train]'"
                checks.append(Check(label, WARN, "not installed: needed to train and export", fix))
            else:
                checks.append(Check(label, INFO, "not installed (optional)"))
            continue
        bad = _unmet(reqs)
        if not bad:
            checks.append(Check(label, OK, _version_line(r.name for r in reqs[:3])))
        for r, what in bad:
            checks.append(Check(r.name, WARN, f"{what} (for [{extra}])", _pip_fix(r, extra)))
    return checks


def _unmet(reqs: Iterable[Requirement]) -> list[tuple[Requirement, str]]:
    out = []
    for r in reqs:
        found = _provider_of(r.name)
        if found is None:
            out.append((r, "not installed"))
        elif not _satisfies(found[1], r.specifier):
            out.append((r, f"{found[1]}, needs {r.specifier}"))
    return out


def _version_line(names: Iterable[str]) -> str:
    parts = []
    for n in names:
        found = _provider_of(n)
        parts.append(f"{found[0] if found else n} {found[1] if found else '-'}")
    return ", ".join(parts)


def check_traps() -> list[Check]:
    """Combinations known to break this stack, whatever the version numbers say."""
    checks = []
    if _installed("torchvision"):
        checks.append(
            Check(
                "torchvision",
                WARN,
                f"{_installed('torchvision')} installed: it breaks transformers' imports here "
                "and nothing in slt-serve needs it",
                "pip uninstall -y torchvision",
            )
        )
    numpy = _installed("numpy") or "0"
    mm = [d for d in ("mmpose", "mmcv", "mmcv-full") if _installed(d)]
    if mm and Version(numpy).major >= 2:
        checks.append(
            Check(
                "mmpose + numpy 2",
                WARN,
                f"{', '.join(mm)} with numpy {numpy}: mmpose does not import on numpy 2",
                "not needed: `slt export pose CKPT` reads mmpose checkpoints without mmpose "
                "(pip uninstall -y " + " ".join(mm) + ")",
            )
        )
    tf = _installed("transformers")
    if tf:
        major = Version(tf).major
        if major in TESTED_TRANSFORMERS_MAJORS:
            checks.append(
                Check(
                    "transformers",
                    OK,
                    f"{tf} (stock {major}.x works; the reference TwoStream-SLT code "
                    "pins 4.11.3: do not downgrade for it)",
                )
            )
        else:
            checks.append(
                Check(
                    "transformers",
                    WARN,
                    f"{tf}: major version {major} is untested here (tested: "
                    f"{', '.join(f'{m}.x' for m in TESTED_TRANSFORMERS_MAJORS)})",
                    f"pip install 'transformers<{max(TESTED_TRANSFORMERS_MAJORS) + 1}'",
                )
            )
    both = [d for d in ("onnxruntime-gpu", "onnxruntime-directml") if _installed(d)]
    if both and _installed("onnxruntime"):
        checks.append(
            Check(
                "onnxruntime builds",
                WARN,
                f"onnxruntime and {both[0]} both installed: they provide the same module and "
                "the last one installed wins",
                "pip uninstall -y onnxruntime && pip install --force-reinstall " + both[0],
            )
        )
    return checks


# --- GPU, onnxruntime, torch, disk, codecs ---------------------------------------------------


@dataclass(frozen=True)
class GpuInfo:
    names: list[str]
    driver: str | None
    cuda: str | None  # the newest CUDA the driver supports
    error: str | None = None


def nvidia_gpus() -> GpuInfo | None:
    """GPUs `nvidia-smi` sees; None when there is no nvidia-smi (no NVIDIA driver)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        listing = subprocess.run(
            [exe, "--query-gpu=name,memory.total,driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        banner = subprocess.run([exe], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return GpuInfo([], None, None, f"nvidia-smi failed: {e}")
    if listing.returncode != 0:
        msg = (listing.stderr or listing.stdout).strip().splitlines()
        return GpuInfo([], None, None, msg[0] if msg else f"exit {listing.returncode}")
    rows = [r.split(", ") for r in listing.stdout.strip().splitlines() if r.strip()]
    cuda = re.search(r"CUDA Version:\s*([\d.]+)", banner.stdout)
    return GpuInfo(
        [f"{r[0]} ({r[1]})" for r in rows if len(r) >= 2],
        rows[0][2] if rows and len(rows[0]) > 2 else None,
        cuda.group(1) if cuda else None,
    )


def check_gpu(gpu: GpuInfo | None, training: bool) -> Check:
    if gpu is None or (not gpu.names and gpu.error is None):
        status = WARN if training else OK
        return Check(
            "GPU",
            status,
            "no NVIDIA GPU visible (no nvidia-smi)"
            + ("; training will run on CPU" if training else ""),
            "fine for serving and CPU trials; train on a machine with a GPU" if training else "",
        )
    if gpu.error:
        return Check(
            "GPU", FAIL, f"nvidia-smi is there but fails: {gpu.error}", "check the NVIDIA driver"
        )
    return Check(
        "GPU", OK, f"{'; '.join(gpu.names)}, driver {gpu.driver}, CUDA ≤ {gpu.cuda or '?'}"
    )


def _identity_onnx() -> bytes | None:
    """A one-node ONNX model, to see whether a provider really loads; None without `onnx`."""
    try:
        from onnx import TensorProto, helper
    except ImportError:
        return None
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "probe",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model.SerializeToString()


def check_onnxruntime(gpu: GpuInfo | None) -> Check:
    try:
        import onnxruntime as ort
    except ImportError as e:
        return Check("onnxruntime", FAIL, f"does not import: {e}", "pip install onnxruntime")
    providers = ort.get_available_providers()
    has_gpu = gpu is not None and bool(gpu.names)
    short = ", ".join(p.removesuffix("ExecutionProvider") for p in providers)
    if "CUDAExecutionProvider" not in providers:
        if has_gpu:
            return Check(
                "onnxruntime",
                WARN,
                f"{ort.__version__}, providers: {short}; a GPU is visible but serving would run on CPU",
                "pip uninstall -y onnxruntime && pip install 'slt-serve[gpu]'",
            )
        return Check("onnxruntime", OK, f"{ort.__version__}, providers: {short}")
    model = _identity_onnx()
    if model is None:
        return Check(
            "onnxruntime", OK, f"{ort.__version__}, providers: {short} (CUDA not tried: no onnx)"
        )
    options = ort.SessionOptions()
    options.log_severity_level = 4  # a provider that fails to load would log an error
    try:
        used = ort.InferenceSession(
            model, options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
        ).get_providers()
    except Exception as e:  # noqa: BLE001 - any load failure is the finding
        used, error = [], str(e).splitlines()[0]
    else:
        error = ""
    if "CUDAExecutionProvider" in used:
        return Check("onnxruntime", OK, f"{ort.__version__}, providers: {short}; CUDA loads")
    return Check(
        "onnxruntime",
        WARN,
        f"{ort.__version__}: CUDAExecutionProvider is listed but does not load"
        + (f" ({error})" if error else " (CUDA/cuDNN libraries missing or of another version)"),
        "install the CUDA and cuDNN versions this onnxruntime-gpu was built for "
        "(onnxruntime.ai, 'CUDA execution provider' requirements)",
    )


def probe_torch(timeout: float = 180) -> dict | str:
    """torch's own view (version, CUDA build, devices), from a subprocess; a string on failure."""
    try:
        r = subprocess.run(
            [sys.executable, "-c", TORCH_PROBE], capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return f"`import torch` took over {timeout:.0f} s"
    if r.returncode != 0:
        lines = [x for x in r.stderr.strip().splitlines() if x.strip()]
        return lines[-1] if lines else f"exit {r.returncode}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_torch(gpu: GpuInfo | None) -> Check | None:
    """None when torch is not installed (a serving-only install needs none)."""
    if _installed("torch") is None:
        return None
    info = probe_torch()
    if isinstance(info, str):
        return Check(
            "torch", FAIL, f"installed but `import torch` fails: {info}", "reinstall torch"
        )
    build = f"CUDA {info['cuda']}" if info["cuda"] else "CPU build"
    if info["available"]:
        devices = ", ".join(info["devices"])
        return Check(
            "torch",
            OK,
            f"{info['version']} ({build}) sees {devices}; bf16 {'yes' if info['bf16'] else 'no (use fp16)'}",
        )
    if gpu is not None and gpu.names:
        if not info["cuda"]:
            why, fix = (
                "a CPU build, though a GPU is visible",
                f"pip install --force-reinstall 'torch=={info['version'].split('+')[0]}' "
                "(PyPI's Linux wheels are CUDA builds)",
            )
        elif gpu.cuda and Version(info["cuda"]) > Version(gpu.cuda):
            why, fix = (
                f"built for CUDA {info['cuda']}, newer than the driver's CUDA {gpu.cuda}",
                "install a torch build for an older CUDA, or update the NVIDIA driver",
            )
        else:
            why, fix = "cannot use the visible GPU", "check CUDA_VISIBLE_DEVICES and the driver"
        return Check("torch", FAIL, f"{info['version']} ({build}) {why}", fix)
    return Check("torch", OK, f"{info['version']} ({build}), no GPU: training on CPU")


def check_disk(where: Path) -> Check:
    """Free space where the data and runs will grow."""
    target = where.resolve()
    while not target.exists():  # a dataset root not made yet: the folder it will be made in
        target = target.parent
    free = shutil.disk_usage(target).free / 1e9
    detail = f"{free:.1f} GB free at {target}"
    if free < DISK_FAIL_GB:
        return Check("disk", FAIL, detail, "free space: frames caches and checkpoints need GBs")
    if free < DISK_WARN_GB:
        return Check(
            "disk",
            WARN,
            detail,
            "a real corpus needs ~10-20 GB (frames cache, checkpoints, mBART); keep_best_n small",
        )
    return Check("disk", OK, detail)


def check_codecs() -> Check:
    """PyAV decodes H.264 and encodes libx264 (the frames cache), shown by a round trip."""
    try:
        import av
        import numpy as np
    except ImportError as e:
        return Check("video codecs", FAIL, f"PyAV does not import: {e}", "pip install 'av>=12'")
    missing = [
        f"{name} ({'decoder' if mode == 'r' else 'encoder'})"
        for name, mode in (("h264", "r"), ("libx264", "w"))
        if not _has_codec(av, name, mode)
    ]
    if missing:
        return Check(
            "video codecs",
            FAIL,
            f"PyAV {av.__version__} lacks {', '.join(missing)}",
            "pip install --force-reinstall av  (PyPI's wheels bundle FFmpeg with libx264)",
        )
    try:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mp4") as out:
            stream = out.add_stream("libx264", rate=25)
            stream.width = stream.height = 32
            stream.pix_fmt = "yuv420p"
            for i in range(3):
                img = np.full((32, 32, 3), 40 * i, np.uint8)
                out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
            out.mux(stream.encode())
        buf.seek(0)
        with av.open(buf) as inp:
            decoded = sum(1 for _ in inp.decode(video=0))
    except Exception as e:  # noqa: BLE001 - any failure of the round trip is the finding
        return Check("video codecs", FAIL, f"H.264 round trip failed: {e}", "reinstall av")
    if decoded != 3:
        return Check(
            "video codecs", FAIL, f"H.264 round trip gave {decoded} of 3 frames", "reinstall av"
        )
    others = [n for n in ("hevc", "vp9", "mpeg4") if not _has_codec(av, n, "r")]
    ffmpeg = ".".join(map(str, av.library_versions.get("libavcodec", ())))
    detail = f"PyAV {av.__version__} (libavcodec {ffmpeg}): h264 decode + libx264 encode work"
    if others:
        return Check(
            "video codecs",
            WARN,
            f"{detail}; no {', '.join(others)} decoder (phone videos are often HEVC)",
            "pip install --force-reinstall av",
        )
    return Check("video codecs", OK, detail + "; hevc, vp9, mpeg4 decode")


def _has_codec(av, name: str, mode: str) -> bool:
    try:
        av.codec.Codec(name, mode)
    except Exception:  # noqa: BLE001 - PyAV raises UnknownCodecError or ValueError by version
        return False
    return True


def check_mediapipe() -> Check | None:
    """The MediaPipe wheel of the [pose] extra (`--pose mediapipe`): installed with --no-deps,
    so no declared requirement covers it. No row unless MediaPipe or the whole extra is there."""
    from slt_serve.pose_mediapipe import DISTRIBUTION as MEDIAPIPE
    from slt_serve.pose_mediapipe import install_problem

    pose = [r for extra, r in requirements() if extra == "pose"]
    present = _installed(MEDIAPIPE) or _installed("mediapipe")
    if not present and (not pose or _unmet(pose)):
        return None
    problem = install_problem()
    if problem is None:
        return Check("MediaPipe", OK, f"{MEDIAPIPE} {present}: Holistic runs offline")
    detail, _, fix = problem.partition(": ")
    return Check("MediaPipe", WARN, f"{detail} (for --pose mediapipe)", fix)


def environment_checks(where: Path | None = None) -> list[Check]:
    """Python, packages, known traps, GPU, onnxruntime, torch, free disk at `where`, codecs."""
    gpu = nvidia_gpus()
    training = _installed("torch") is not None
    checks = [check_python(), *check_packages(), *check_traps()]
    mediapipe = check_mediapipe()
    checks += [mediapipe] if mediapipe else []
    torch_check = check_torch(gpu)
    checks += [check_gpu(gpu, training), check_onnxruntime(gpu)]
    if torch_check is not None:
        checks.append(torch_check)
    checks += [check_disk(where or Path.cwd()), check_codecs()]
    return checks


# --- a dataset root: the training stack knows how to read one ----------------------------------

_dataset_checks: list[Callable[[Path], DatasetState]] = []


def provide_dataset_checks(checks: Callable[[Path], DatasetState]) -> None:
    """How `slt doctor DATASET` reads a dataset root. The training stack's `slt` plugin calls
    this when it registers its commands (this module may not import the training stack)."""
    _dataset_checks[:] = [checks]


def run_doctor(dataset: str | os.PathLike | None = None) -> Report:
    """The environment checks, then (with `dataset`) the dataset root's state and next step."""
    report = Report(environment_checks(Path(dataset) if dataset else None))
    if dataset is not None:
        if not _dataset_checks:
            raise SltError(
                "checking a dataset root needs the training stack (slt_training, installed with "
                "slt-serve), whose `slt` plugin did not load; reinstall slt-serve, or run "
                "slt doctor without DATASET"
            )
        state = _dataset_checks[0](Path(dataset))
        report.checks += state.checks
        report.next_step = state.next_step
    return report
