"""Fixtures shared by the test files: asked for by name (`one_thread` through
`pytest.mark.usefixtures`)."""

from __future__ import annotations

import os
from pathlib import Path

if os.environ.get("PYTEST_XDIST_WORKER"):  # `pytest -n N`: N test processes share the cores,
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one torch / onnxruntime thread each

import cached_bundles
import pytest

from slt_serve.translator import TranslateOptions, Translator


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models on a shared 2-core CPU: one torch thread avoids OpenMP contention
    (~50x faster than contended). torch is imported here, not at collection, so the
    torch-free serving tests stay torch-free."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def s2t_bundle(request) -> Path:
    """The tiny SingleStream S2T bundle, exported once into pytest's cache (`cached_bundles`)."""
    return cached_bundles.bundle(Path(request.config.cache.mkdir("slt-bundles")), "s2t")


@pytest.fixture(scope="module")
def s2t(s2t_bundle) -> Translator:
    """A CPU `Translator` on `s2t_bundle`."""
    return Translator.from_bundle(s2t_bundle, TranslateOptions(device="cpu"))


@pytest.fixture(scope="module")  # after the module's `one_thread`; built once all the same
def single():
    """The tiny SingleStream S2T bundle with the PyTorch models it came from, exported once
    per test process (`tiny_bundles.s2t_bundle`): (export result, recognizer, translation
    model, tokenizer). tiny_bundles (torch) is imported here, not at collection."""
    import tiny_bundles

    return tiny_bundles.shared("single", tiny_bundles.s2t_bundle)


def pytest_collection_modifyitems(items):
    """Files with `slow` tests first (order kept otherwise): under `pytest -n`, whose workers
    take a file at a time, the long files start at once instead of finishing last."""
    slow = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow)
