"""`slt doctor`: is this machine (and a dataset root) ready, and if not, what to run.

Environment checks read installed versions through `importlib.metadata` and
ask the tools themselves: `nvidia-smi` for the GPU, onnxruntime for its
providers (a CUDA provider is tried on a one-node model, because a listed
provider whose CUDA/cuDNN libraries do not load silently falls back to CPU),
PyAV by encoding and decoding a short clip. torch is never imported here
(slt_serve must stay torch-free): its CUDA view comes from a `python -c`
subprocess, only when torch is installed.

Dataset checks read files and JSON only (slt_serve may not import the
training stack) and name the next preparation step; `slt data check` is the
deeper validation.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

DISTRIBUTION = "slt-serve"
OK, WARN, FAIL, INFO = "ok", "warn", "fail", "info"
SPLITS = ("train", "dev", "test")
VOCAB_FILE = "gloss_vocab.json"
SPECIALS = ("<blank>", "<pad>", "<unk>")
# Free disk below which preparing and training a corpus runs out: the PHOENIX-2014T frames
# cache at 256² is ~2.5 GB, an S2G checkpoint with optimizer state ~0.3 GB, mBART-large 2.4 GB.
DISK_FAIL_GB, DISK_WARN_GB = 2.0, 20.0
TESTED_TRANSFORMERS_MAJORS = (4, 5)
# What to run once a dataset root is prepared (the training entry point).
TRAIN_HINT = (
    "cp configs/custom.yaml my.yaml, set run_dir, data.root: {root}, data.lang and "
    "data.frame_size: {size}, then slt pipeline my.yaml"
)
DEV_OOV_WARN = 10.0  # % of dev/test gloss tokens missing from the vocabulary
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
# Extras a user may leave out without losing anything they asked for.
OPTIONAL_EXTRAS = ("vi", "zh", "demo", "gpu", "dev")
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


def _requirements() -> list[tuple[str | None, Requirement]]:
    """(extra or None, requirement) for every requirement slt-serve declares."""
    out = []
    for line in metadata.requires(DISTRIBUTION) or []:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            continue
        extra = None
        if req.marker is not None:
            found = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", str(req.marker))
            extra = found.group(1) if found else None
            if extra is None and not req.marker.evaluate():
                continue  # a platform marker that does not apply here
        out.append((extra, req))
    return out


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
    for extra, req in _requirements():
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


def environment_checks(where: Path | None = None) -> list[Check]:
    """Python, packages, known traps, GPU, onnxruntime, torch, free disk at `where`, codecs."""
    gpu = nvidia_gpus()
    training = _installed("torch") is not None
    checks = [check_python(), *check_packages(), *check_traps()]
    torch_check = check_torch(gpu)
    checks += [check_gpu(gpu, training), check_onnxruntime(gpu)]
    if torch_check is not None:
        checks.append(torch_check)
    checks += [check_disk(where or Path.cwd()), check_codecs()]
    return checks


# --- a dataset root ---------------------------------------------------------------------------


def guess_language(texts: Iterable[str]) -> str | None:
    """'vi' or 'zh' when the text shows its script, else None (the user says which)."""
    sample = " ".join(t for _, t in zip(range(200), texts))
    if re.search(r"[\u4e00-\u9fff]", sample):
        return "zh"
    if re.search(r"[ăâđêôơưạảấầẩẫậắằẳẵặẹẻẽếềểễệỉịọỏốồổỗộớờởỡợụủứừửữựỳỵỷỹ]", sample.lower()):
        return "vi"
    return None


def _read_split(path: Path) -> tuple[list[dict], str | None]:
    clips = []
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                return clips, f"{path.name} line {lineno} is not JSON"
            if not isinstance(row, dict) or not row.get("name"):
                return clips, f"{path.name} line {lineno} has no 'name'"
            clips.append(row)
    return clips, None


def _glosses(clips: Iterable[dict]) -> list[str]:
    return [g for c in clips for g in str(c.get("gloss") or "").split()]


def _frames_caches(root: Path, names: set[str]) -> dict[int, int]:
    """size → clips of `names` in ROOT/frames/<size>/ (a cache is a folder with cache.json)."""
    out = {}
    base = root / "frames"
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir()):
        if d.is_dir() and d.name.isdigit() and (d / "cache.json").is_file():
            out[int(d.name)] = sum(1 for n in names if (d / f"{n}.mp4").is_file())
    return out


def dataset_checks(root: str | os.PathLike) -> DatasetState:
    """What a dataset root holds, in preparation order, and the command to run next."""
    root = Path(root)
    checks: list[Check] = []
    if not root.is_dir():
        fix = f"slt data import-folder VIDEOS --table sentences.csv --out {root}"
        checks.append(Check("dataset", FAIL, f"{root}: no such folder", fix))
        return DatasetState(checks, fix)
    splits: dict[str, list[dict]] = {}
    for split in SPLITS:
        path = root / f"{split}.jsonl"
        if path.is_file():
            clips, error = _read_split(path)
            if error:
                checks.append(
                    Check("annotations", FAIL, error, f"slt data check {root} (names the field)")
                )
                return DatasetState(checks, f"fix {path}, then slt doctor {root}")
            splits[split] = clips
    if "train" not in splits:
        fix = f"slt data import-folder VIDEOS --table sentences.csv --out {root}"
        what = "no train.jsonl" + (f" (found {', '.join(splits)})" if splits else "")
        checks.append(Check("annotations", FAIL, what, fix))
        return DatasetState(checks, fix)
    every = [c for clips in splits.values() for c in clips]
    counts = ", ".join(f"{s} {len(c)}" for s, c in splits.items())
    signers = {
        s: {c.get("signer") for c in clips if c.get("signer")} for s, clips in splits.items()
    }
    seen = signers.get("train", set())
    unseen = sorted(s for split in ("dev", "test") for s in signers.get(split, set()) - seen)
    checks.append(
        Check(
            "annotations",
            OK if "dev" in splits else WARN,
            f"{counts} clips; "
            + (
                f"{len(unseen)} dev/test signer(s) unseen in train"
                if unseen
                else "no unseen signers"
            )
            + ("" if "dev" in splits else "; no dev split (no model selection)"),
            "" if "dev" in splits else "import with a dev split (import-folder makes one)",
        )
    )
    steps: list[str] = []  # the blocking steps still to do, in order

    missing = [c["name"] for c in every if c.get("video") and not (root / c["video"]).exists()]
    if missing:
        fix = f"fix the 'video' paths (relative to {root}) or the files; slt data check {root}"
        checks.append(
            Check(
                "videos", FAIL, f"{len(missing)} clip(s) point at no file, e.g. {missing[0]}", fix
            )
        )
        steps.append(fix)
    else:
        no_video = sum(1 for c in every if not c.get("video"))
        checks.append(
            Check(
                "videos",
                OK if not no_video else WARN,
                "every clip's video is there"
                + (f"; {no_video} clip(s) have none (text only)" if no_video else ""),
            )
        )

    no_gloss = [c for c in every if not str(c.get("gloss") or "").strip()]
    if no_gloss:
        lang = guess_language(str(c.get("text") or "") for c in every) or "LANG"
        fix = f"slt data gloss-from-text {root} --lang {lang}"
        checks.append(
            Check("glosses", FAIL, f"{len(no_gloss)} of {len(every)} clips have no gloss", fix)
        )
        steps.append(fix)
    else:
        pseudo = sum(1 for c in every if str(c.get("gloss_source", "")).startswith("pseudo"))
        kind = f"pseudo-glosses ({pseudo} clips)" if pseudo else "human glosses"
        checks.append(Check("glosses", OK, f"every clip has a gloss: {kind}"))

    vocab_check, vocab_fix = _vocab_check(root, splits)
    checks.append(vocab_check)
    if vocab_fix and not no_gloss:
        steps.append(vocab_fix)

    names = {c["name"] for c in every if c.get("video")}
    caches = _frames_caches(root, names)
    if not names:
        checks.append(Check("frames cache", INFO, "no clip has a video (G2T only)"))
    elif not caches:
        fix = f"slt data frames {root} --size 256"
        checks.append(Check("frames cache", FAIL, "none yet", fix + "  (64 for a CPU trial)"))
        steps.append(fix)
    else:
        full = {s: n for s, n in caches.items() if n == len(names)}
        detail = ", ".join(f"{s}²: {n}/{len(names)} clips" for s, n in caches.items())
        if full:
            checks.append(
                Check(
                    "frames cache",
                    OK,
                    detail + " (the config's data.frame_size must be one of these)",
                )
            )
        else:
            size = max(caches, key=caches.get)
            fix = f"slt data frames {root} --size {size}"
            checks.append(
                Check(
                    "frames cache",
                    FAIL,
                    f"{detail}; errors in frames/{size}/errors.jsonl",
                    fix + " (resumes; fix or drop the failed clips)",
                )
            )
            steps.append(fix)

    if names:
        kp = root / "keypoints"
        have = sum(1 for n in names if (kp / f"{n}.npz").is_file())
        kp_fix = f"slt data keypoints {root} --pose pose.onnx  (or --from-pose DIR of .pose files)"
        if have == len(names):
            checks.append(Check("keypoints", OK, f"{have}/{len(names)} clips: TwoStream ready"))
        elif have == 0:
            checks.append(
                Check(
                    "keypoints",
                    INFO,
                    "none: SingleStream only (TwoStream needs them)",
                    kp_fix,
                )
            )
        else:
            checks.append(
                Check(
                    "keypoints",
                    WARN,
                    f"{have}/{len(names)} clips; TwoStream needs all (see keypoints/errors.jsonl)",
                    kp_fix + " (resumes)",
                )
            )
    if steps:
        return DatasetState(checks, steps[0])
    sizes = sorted(s for s, n in caches.items() if n == len(names)) or [256]
    return DatasetState(checks, TRAIN_HINT.format(root=root, size=sizes[-1]))


def _vocab_check(root: Path, splits: dict[str, list[dict]]) -> tuple[Check, str | None]:
    path = root / VOCAB_FILE
    fix = f"slt data vocab {root}"
    if not path.is_file():
        return Check("gloss vocabulary", FAIL, f"no {VOCAB_FILE}", fix), fix
    try:
        table = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        return Check("gloss vocabulary", FAIL, f"{VOCAB_FILE} unreadable: {e}", fix), fix
    if not isinstance(table, dict) or any(s not in table for s in SPECIALS):
        return (
            Check("gloss vocabulary", FAIL, f"{VOCAB_FILE} lacks {', '.join(SPECIALS)}", fix),
            fix,
        )
    stale = sorted(set(_glosses(splits["train"])) - set(table))
    if stale:
        detail = f"{len(stale)} train gloss(es) missing, e.g. {stale[0]}: built before the glosses changed"
        return Check("gloss vocabulary", FAIL, detail, fix + "  (rebuild it)"), fix
    oov = []
    worst = 0.0
    for split in ("dev", "test"):
        tokens = _glosses(splits.get(split, []))
        if tokens:
            rate = 100 * sum(1 for g in tokens if g not in table) / len(tokens)
            worst = max(worst, rate)
            oov.append(f"{split} OOV {rate:.1f}%")
    detail = f"{len(table) - len(SPECIALS)} glosses" + (f"; {', '.join(oov)}" if oov else "")
    if worst > DEV_OOV_WARN:
        return (
            Check(
                "gloss vocabulary",
                WARN,
                detail + ": glosses unseen in train cannot be recognised",
                "more train data, or --stopwords/--lemmas for gloss-from-text to merge variants",
            ),
            None,
        )
    return Check("gloss vocabulary", OK, detail), None


def run_doctor(dataset: str | os.PathLike | None = None) -> Report:
    """The environment checks, then (with `dataset`) the dataset root's state and next step."""
    report = Report(environment_checks(Path(dataset) if dataset else None))
    if dataset is not None:
        state = dataset_checks(dataset)
        report.checks += state.checks
        report.next_step = state.next_step
    return report
