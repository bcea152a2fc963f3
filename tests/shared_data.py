"""Where the tests find the real data kept beside the repository (../shared/data, README there).

Tests that need it skip when it is absent (`pytest.mark.skipif(not X.exists(), ...)`).
"""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
POSES = DATA / "poses"  # .pose files and the webcam clip, from the pose-format project (MIT)
WEBCAM = POSES / "signer_webcam_58f.mp4"  # a signer on a webcam, 540×720, 58 frames
REAL_CLIPS = DATA / "real-clips"
