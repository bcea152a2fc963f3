"""`slt import`: the reference's files brought into our formats."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from reference_kit import kit_dir
from typer.testing import CliRunner

from slt_serve.cli import app
from slt_serve.errors import SltError
from slt_training.data.pose_files import read_npz
from slt_training.reference.keypoints import import_keypoints


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_slrt_keypoints_become_our_npz_cache(tmp_path):
    points = np.load(kit_dir() / "s2g_inputs.npz")["keypoints_133"]
    pkl = tmp_path / "phoenix-2014t-keypoints.pkl"
    pkl.write_bytes(
        pickle.dumps(
            {"dev/clip-1": {"keypoints": points}, "test/clip-2": {"keypoints": points[:5]}}
        )
    )
    args = ["import", "slrt-keypoints", str(pkl), str(tmp_path / "ds")]
    result = CliRunner().invoke(app, [*args, "--width", "210", "--height", "260", "--fps", "25"])
    assert result.exit_code == 0, result.output
    seq = read_npz(tmp_path / "ds" / "keypoints" / "dev" / "clip-1.npz")
    assert np.array_equal(seq.keypoints, points) and (seq.width, seq.height, seq.fps) == (
        210,
        260,
        25.0,
    )
    assert read_npz(tmp_path / "ds" / "keypoints" / "test" / "clip-2.npz").keypoints.shape == (
        5,
        133,
        3,
    )
    again = import_keypoints(pkl, tmp_path / "ds", 210, 260, 25.0)
    assert (again.written, again.skipped) == (0, 2)


def test_slrt_keypoints_refuse_code_and_wrong_shapes(tmp_path):
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": _Evil()}))
    with pytest.raises(
        SltError, match="refusing to unpickle posix.system|refusing to unpickle os.system"
    ):
        import_keypoints(evil, tmp_path / "ds", 210, 260, 25.0)
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps({"a": {"keypoints": np.zeros((4, 79, 3), np.float32)}}))
    with pytest.raises(
        SltError, match=r"clip 'a' keypoints are \(4, 79, 3\), expected \(T, 133, 3\)"
    ):
        import_keypoints(bad, tmp_path / "ds", 210, 260, 25.0)
