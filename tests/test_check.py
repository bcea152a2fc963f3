"""`slt data check` (check_dataset) and the preparation state `slt doctor DATASET` shows
(dataset_state): a dataset root at each stage of preparation names the right next step."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from slt_serve.video import write_video
from slt_training.data.annotations import load_split, split_path, write_jsonl
from slt_training.data.check import check_dataset, dataset_state
from slt_training.data.synth.corpus import generate, options_for


def test_check_probes_videos_and_finds_wrong_frame_counts(tmp_path):
    root = tmp_path / "ds"
    generate(root, options_for("cpu", clips=10, glosses=16, size=64, signers=2))
    report = check_dataset(root, probe=True, workers=2)
    assert report.ok, report.problems
    assert sum(r.clips for r in report.splits) == 10
    assert all(r.frames_mismatch == 0 and r.videos_missing == 0 for r in report.splits)
    assert any("gloss_vocab.json" in w for w in report.warnings)

    train = load_split(root, "train")
    train[0] = train[0].model_copy(update={"num_frames": train[0].num_frames + 5})
    (root / train[1].video).write_bytes(b"not a video")
    write_jsonl(split_path(root, "train"), train)
    report = check_dataset(root, probe=True, workers=2)
    assert not report.ok
    assert report.splits[0].frames_mismatch == 2
    assert any("unreadable or with a frame count" in p for p in report.problems)
    assert check_dataset(root, probe=False).ok  # without probing nothing looks wrong


def slt(*args):
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args], capture_output=True, text=True, timeout=300
    )


def by_name(checks):
    return {c.name: c for c in checks}


# --- a dataset root, step by step --------------------------------------------------------------

TEXTS = [
    ("c0", "tôi đi ngân hàng.", "s0"),
    ("c1", "bạn đọc thư.", "s0"),
    ("c2", "anh ấy đi học.", "s1"),
    ("c3", "tôi đọc sách.", "s1"),
    ("c4", "bạn đi chợ.", "s2"),
    ("c5", "anh ấy đọc báo.", "s2"),
]


@pytest.fixture
def raw(tmp_path):
    """A folder of six tiny videos and a CSV of Vietnamese sentences, three signers."""
    videos = tmp_path / "raw" / "videos"
    rng = np.random.default_rng(0)
    for name, _, _ in TEXTS:
        write_video(videos / f"{name}.mp4", rng.integers(0, 255, (6, 32, 32, 3), np.uint8), 25)
    table = tmp_path / "raw" / "sentences.csv"
    with table.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("name", "text", "signer"), *TEXTS])
    return videos, table


def test_next_step_at_each_stage_of_preparation(tmp_path, raw):
    from slt_training.data.annotations import load_split, write_jsonl
    from slt_training.data.frames import cache_frames
    from slt_training.data.importers import import_folder, write_dataset
    from slt_training.data.vocab import build_vocab

    ds = tmp_path / "ds"
    state = dataset_state(ds)
    assert state.next_step.startswith("slt data import-folder")
    assert by_name(state.checks)["dataset"].status == "fail"

    result = import_folder(*raw, ds)
    write_dataset(ds, result.splits, False)
    state = dataset_state(ds)
    assert state.next_step == f"slt data gloss-from-text {ds} --lang vi"  # language from the text
    assert by_name(state.checks)["glosses"].status == "fail"
    assert "unseen in train" in by_name(state.checks)["annotations"].detail  # split by signer

    for split in ("train", "dev", "test"):  # glosses as gloss-from-text writes them
        clips = load_split(ds, split)
        write_jsonl(
            ds / f"{split}.jsonl",
            [
                c.model_copy(
                    update={"gloss": c.text.strip(".").upper(), "gloss_source": "pseudo:vi"}
                )
                for c in clips
            ],
        )
    state = dataset_state(ds)
    assert state.next_step == f"slt data vocab {ds}"
    assert "pseudo-glosses" in by_name(state.checks)["glosses"].detail

    build_vocab(load_split(ds, "train")).save(ds / "gloss_vocab.json")
    state = dataset_state(ds)
    assert state.next_step == f"slt data frames {ds} --size 256"
    assert "OOV" in by_name(state.checks)["gloss vocabulary"].detail

    cache_frames(ds, size=32, workers=1, progress=False)
    state = dataset_state(ds)
    checks = by_name(state.checks)
    assert checks["frames cache"].status == "ok" and "32²: 6/6" in checks["frames cache"].detail
    assert checks["keypoints"].status == "info"  # SingleStream needs none
    assert "data.frame_size: 32" in state.next_step and "configs/custom.yaml" in state.next_step
    assert not [c for c in state.checks if c.status == "fail"]

    # glosses changed after the vocabulary was built: a stale table is caught
    clips = load_split(ds, "train")
    write_jsonl(ds / "train.jsonl", [clips[0].model_copy(update={"gloss": "NEW"}), *clips[1:]])
    state = dataset_state(ds)
    assert by_name(state.checks)["gloss vocabulary"].status == "fail"
    assert state.next_step == f"slt data vocab {ds}"


def test_dataset_problems(tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "train.jsonl").write_text('{"name": "a", "text": "Hallo", "video": "v/a.mp4"}\n')
    state = dataset_state(ds)
    checks = by_name(state.checks)
    assert checks["videos"].status == "fail" and "a" in checks["videos"].detail
    assert checks["annotations"].status == "warn"  # no dev split
    assert "--lang LANG" in checks["glosses"].fix  # no script to tell the language by
    (ds / "train.jsonl").write_text('{"name": "a"}\nnot json\n')
    state = dataset_state(ds)
    assert "line 2 is not JSON" in by_name(state.checks)["annotations"].detail


def test_partial_frames_cache_and_keypoints(tmp_path, raw):
    from slt_training.data.frames import cache_frames
    from slt_training.data.importers import import_folder, write_dataset

    ds = tmp_path / "ds"
    write_dataset(ds, import_folder(*raw, ds).splits, False)
    cache_frames(ds, size=32, workers=1, progress=False)
    next(iter((ds / "frames" / "32").glob("c*.mp4"))).unlink()
    (ds / "keypoints").mkdir()
    (ds / "keypoints" / "c0.npz").write_bytes(b"x")
    checks = by_name(dataset_state(ds).checks)
    assert checks["frames cache"].status == "fail" and "5/6" in checks["frames cache"].detail
    assert "--size 32" in checks["frames cache"].fix
    assert checks["keypoints"].status == "warn" and "1/6" in checks["keypoints"].detail


def test_import_folder_names_the_split_signers_and_the_texts_language(tmp_path, raw):
    videos, table = raw
    r = slt(
        "data", "import-folder", str(videos), "--table", str(table), "--out", str(tmp_path / "ds")
    )
    assert r.returncode == 0, r.stderr
    assert "1 signer" in r.stdout and "split by signer" in r.stdout
    assert f"next: slt data gloss-from-text {tmp_path / 'ds'} --lang vi" in r.stdout
