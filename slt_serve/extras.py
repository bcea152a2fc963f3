"""The optional extras of slt-serve: what each one requires, and which one a missing module needs.

Read from the installed distribution's metadata (pyproject.toml's `optional-dependencies`),
so the extras are declared in one place. `slt doctor` judges them; the `slt` command turns a
`ModuleNotFoundError` for a module of an extra into one line naming the extra to install.
"""

from __future__ import annotations

import re
from importlib import metadata

from packaging.requirements import InvalidRequirement, Requirement

DISTRIBUTION = "slt-serve"
# Requirements whose import name is not their distribution name with '-' → '_'.
IMPORT_NAMES = {"pose-format": "pose_format", "opencv-python-headless": "cv2", "av": "av"}


def requirements() -> list[tuple[str | None, Requirement]]:
    """(extra or None, requirement) for every requirement slt-serve declares."""
    out = []
    try:
        lines = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:  # run from a source tree that was never installed
        lines = []
    for line in lines:
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


def import_name(req: Requirement) -> str:
    """The top-level module a requirement provides (torch, pose_format, cv2, …)."""
    name = req.name.lower()
    return IMPORT_NAMES.get(name, name.replace("-", "_"))


def extra_for_module(module: str) -> str | None:
    """The extra that installs `module` (a dotted name is judged by its top level), or None."""
    top = module.split(".")[0]
    for extra, req in requirements():
        if extra is not None and import_name(req) == top:
            return extra
    return None


def install_hint(error: ImportError) -> str | None:
    """One line for an import that failed because an extra is not installed, else None."""
    module = getattr(error, "name", None)
    extra = extra_for_module(module) if module else None
    if extra is None:
        return None
    top = module.split(".")[0]
    before = " (install torch, the CPU or CUDA build you want, first)" if top == "torch" else ""
    return f"this command needs {top}, which is not installed: pip install 'slt-serve[{extra}]'{before}"
