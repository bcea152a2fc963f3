"""Fixtures shared by the test files (`one_thread` through `pytest.mark.usefixtures`)."""

from __future__ import annotations

import pytest


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
