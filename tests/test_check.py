from slt_training.data.annotations import load_split, split_path, write_jsonl
from slt_training.data.check import check_dataset
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
