"""Where the benchmarks find the real data kept beside the repository (../shared/data, README
there): `from shared_data import DATA, WEBCAM` in a `bench_*.py` (its folder is on sys.path)."""

from __future__ import annotations

from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
WEBCAM = DATA / "poses" / "signer_webcam_58f.mp4"  # pose-format project (MIT), 540×720, 58 frames
REAL_CLIPS = DATA / "real-clips"  # real footage, README there for sources and licences
