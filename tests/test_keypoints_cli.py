"""`slt export pose` and `slt data keypoints` as a user runs them: an mmpose-style checkpoint
to pose.onnx, a dataset's videos or `.pose` files to `.npz`, resume, failures recorded."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from shared_data import POSES, WEBCAM
from typer.testing import CliRunner

from slt_serve.cli import app
from slt_training.data.annotations import Clip, write_jsonl
from slt_training.data.keypoints import keypoints_path
from slt_training.data.pose_files import read_npz

runner = CliRunner()


def slt(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    return result


@pytest.mark.skipif(not POSES.is_dir(), reason=f"{POSES} not present")
def test_from_pose_converts_every_clip_resumes_and_records_failures(tmp_path):
    pose_dir = tmp_path / "poses"
    (pose_dir / "real").mkdir(parents=True)
    clips = []
    for path in sorted(POSES.glob("*.pose")):
        os.symlink(path, pose_dir / "real" / path.name)
        clips.append(Clip(name=f"real/{path.stem}", text="x"))
    clips.append(Clip(name="real/absent", text="x"))
    root = tmp_path / "ds"
    write_jsonl(root / "train.jsonl", clips)
    result = slt("data", "keypoints", root, "--from-pose", pose_dir, "--workers", 2)
    assert result.exit_code == 0, result.output
    assert f"{len(clips) - 1} written" in result.output and "1 failed" in result.output
    for clip in clips[:-1]:
        seq = read_npz(keypoints_path(root, clip.name))
        assert seq.keypoints.shape[1:] == (133, 3) and seq.fps > 0
    errors = [json.loads(line) for line in (root / "keypoints" / "errors.jsonl").open()]
    assert [e["name"] for e in errors] == ["real/absent"] and "not found" in errors[0]["reason"]
    again = slt("data", "keypoints", root, "--from-pose", pose_dir)
    assert again.exit_code == 0 and f"{len(clips) - 1} already there" in again.output


def test_keypoints_arguments_are_checked_first(tmp_path):
    root = tmp_path / "ds"
    write_jsonl(root / "train.jsonl", [Clip(name="a", text="x")])
    for args, message in (
        ((), "exactly one source"),
        (("--pose", tmp_path / "p.onnx", "--from-pose", tmp_path), "exactly one source"),
        (("--pose", tmp_path / "p.onnx"), "no pose model there"),
        (("--from-pose", tmp_path / "nowhere"), "not a folder"),
    ):
        result = slt("data", "keypoints", root, *args)
        assert result.exit_code == 1 and message in str(result.exception), args


@pytest.mark.skipif(not WEBCAM.is_file(), reason=f"{WEBCAM} not present")
def test_export_pose_then_keypoints_from_video(tmp_path):
    torch = pytest.importorskip("torch")
    from tiny_bundles import small_hrnet

    model = small_hrnet(input_size=(64, 64))
    state = {k.replace("head.", "keypoint_head.", 1): v for k, v in model.state_dict().items()}
    ckpt = tmp_path / "hrnet_small.pth"
    torch.save({"meta": {"config": "image_size=[64, 96]"}, "state_dict": state}, ckpt)
    onnx_path = tmp_path / "pose.onnx"
    result = slt("export", "pose", ckpt, "--out", onnx_path)
    assert result.exit_code == 0, result.output
    assert "input 96x64" in result.output and "next: slt data keypoints" in result.output
    bad = slt("export", "pose", ckpt, "--out", onnx_path, "--input-size", "96by64")
    assert bad.exit_code == 1 and "HEIGHTxWIDTH" in str(bad.exception)

    root = tmp_path / "ds"
    (root / "videos").mkdir(parents=True)
    os.symlink(WEBCAM, root / "videos" / "webcam.mp4")
    write_jsonl(root / "dev.jsonl", [Clip(name="webcam", video="videos/webcam.mp4", num_frames=58)])
    result = slt("data", "keypoints", root, "--pose", onnx_path, "--batch-size", 8)
    assert result.exit_code == 0, result.output
    seq = read_npz(keypoints_path(root, "webcam"))
    assert seq.keypoints.shape == (58, 133, 3) and (seq.width, seq.height) == (540, 720)
    assert np.isfinite(seq.keypoints).all() and "0 failed" in result.output
