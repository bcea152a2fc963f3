"""The S2G stage end to end on a tiny synthetic corpus: `slt train s2g`, `slt features`,
refusals naming the command to run first, and learning tests (slow)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_s2g_data import SIZE, make_corpus

from slt_serve.errors import SltError
from slt_training.config import S2GConfig, load_config, validate_config
from slt_training.models.s3d import output_length
from slt_training.runs import INPUT_SPEC_FILE, S2GRun
from slt_training.stages import features, s2g


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("synth") / "ds", clips=12)


def tiny_data(root: Path) -> dict:
    """The data section of CI-sized runs on the tiny corpus (also the pipeline's tests')."""
    return {"root": str(root), "frame_size": SIZE, "input_size": SIZE, "motion_channels": True}


def tiny(root: Path, run_dir: Path, **sections) -> S2GConfig:
    raw = {
        "run_dir": str(run_dir),
        "data": tiny_data(root),
        "model": {"hidden_size": 32, "ff_size": 64},
        "training": {"epochs": 1, "batch_size": 4, "eval_beam_size": 2, "cpu_threads": 1},
    }
    for name, values in sections.items():
        raw[name] = raw.get(name, {}) | values
    return validate_config(raw, S2GConfig, "test")


def slt(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", *args], capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_train_and_features_from_the_command_line(corpus, tmp_path):
    config = tmp_path / "s2g.yaml"
    run_dir = tmp_path / "run"
    config.write_text(yaml.safe_dump(tiny(corpus, run_dir).model_dump(mode="json")))
    r = slt("features", str(config))
    assert r.returncode == 2 and "slt train s2g" in r.stderr and "Traceback" not in r.stderr
    r = slt("train", "s2g", str(config), "--override", "training.max_steps=1")
    assert r.returncode == 0, r.stderr
    assert "next: slt features" in r.stdout
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"dev", "test"} and metrics["beam_size"] == 2
    assert (run_dir / "config.yaml").is_file() and (run_dir / "predictions" / "dev.jsonl").is_file()
    r = slt("train", "s2g", str(config))
    assert r.returncode == 2 and "--resume" in r.stderr
    r = slt("features", str(config), "--split", "dev,test")
    assert r.returncode == 0, r.stderr
    check_features(load_config(config, S2GConfig), corpus)


def check_features(cfg: S2GConfig, root: Path) -> None:
    digest = S2GRun.of(cfg).weights_sha256()
    for split in ("dev", "test"):
        written = features.FeatureSplit.open(Path(cfg.run_dir) / "features" / split, digest)
        clips = [json.loads(line) for line in (root / f"{split}.jsonl").open()]
        assert written.names() == [c["name"] for c in clips]
        for clip, entry in zip(clips, written.index["clips"]):
            assert entry["length"] == output_length(clip["num_frames"])
            feats, log_probs = written.clip(clip["name"])
            assert feats.shape == (entry["length"], 32) and log_probs.shape[0] == entry["length"]
            assert np.allclose(np.exp(log_probs).sum(-1), 1.0, atol=1e-4)
        total = sum(c["length"] for c in written.index["clips"])
        assert written.features.shape == (total, 32)
    with pytest.raises(SltError, match="another S2G checkpoint"):
        features.FeatureSplit.open(Path(cfg.run_dir) / "features" / "dev", "0" * 64)


def test_narrow_network_on_every_2nd_frame_trains_and_writes_strided_features(corpus, tmp_path):
    cfg = tiny(
        corpus,
        tmp_path / "run",
        model={"width": 0.25},
        data={"frame_stride": 2},
        training={"max_steps": 2, "eval_beam_size": 1},
    )
    s2g.train(cfg)
    spec = json.loads((tmp_path / "run" / INPUT_SPEC_FILE).read_text())
    assert spec["frame_stride"] == 2
    assert spec["fps"] == 25.0  # the corpus's frame rate, saved with the run for export
    report = features.extract(cfg, "dev")
    written = features.FeatureSplit.open(report.out_dir / "dev", report.checkpoint_sha256)
    clips = {json.loads(line)["name"]: json.loads(line) for line in (corpus / "dev.jsonl").open()}
    for entry in written.index["clips"]:
        frames = clips[entry["name"]]["num_frames"]
        assert entry["length"] == output_length(max(-(-frames // 2), min(frames, 8)))


def test_stage_refuses_without_frames_cache_or_vocab(corpus, tmp_path):
    no_frames = tmp_path / "no_frames"
    shutil.copytree(corpus, no_frames, ignore=shutil.ignore_patterns("frames"))
    with pytest.raises(SltError, match=r"slt data frames .* --size 32"):
        s2g.train(tiny(no_frames, tmp_path / "a"))
    no_vocab = tmp_path / "no_vocab"
    shutil.copytree(corpus, no_vocab, ignore=shutil.ignore_patterns("gloss_vocab.json"))
    with pytest.raises(SltError, match="slt data vocab"):
        s2g.train(tiny(no_vocab, tmp_path / "b"))
    no_points = tmp_path / "no_points"
    shutil.copytree(corpus, no_points, ignore=shutil.ignore_patterns("keypoints"))
    with pytest.raises(SltError, match="slt data keypoints"):
        s2g.train(tiny(no_points, tmp_path / "c", model={"kind": "two_stream"}))


def test_features_refuse_without_a_checkpoint(corpus, tmp_path):
    with pytest.raises(SltError, match="slt train s2g"):
        features.extract(tiny(corpus, tmp_path / "empty"), "dev")


# --- learning ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def learnable(tmp_path_factory) -> Path:
    """100 clips of 16 glosses at 32², 12.5 fps (half the frames of 25 fps, same signs)."""
    from slt_training.data.annotations import load_split
    from slt_training.data.frames import cache_frames
    from slt_training.data.synth.corpus import generate, options_for
    from slt_training.data.vocab import build_vocab

    root = tmp_path_factory.mktemp("learn") / "ds"
    opts = options_for("cpu", clips=100, glosses=16, size=SIZE, signers=2, seed=1, fps=12.5)
    generate(root, opts)
    build_vocab(load_split(root, "train")).save(root / "gloss_vocab.json")
    cache_frames(root, size=SIZE, workers=1, progress=False)
    return root


def untrained_dev_wer(cfg: S2GConfig) -> float:
    from slt_training.data.s2g_data import SignClips, load_vocab

    vocab = load_vocab(cfg.data.root)
    model, options = s2g.build_model(cfg, len(vocab))
    dev = SignClips(cfg.data.root, "dev", vocab, options)
    return s2g.score(s2g.predict(model, dev, cfg, vocab, 1), False)["wer"]


def learning_config(root: Path, run_dir: Path, **model) -> S2GConfig:
    return tiny(
        root,
        run_dir,
        data={"keypoints": "coco_wholebody_63", "test_split": None},
        model={"hidden_size": 128, "ff_size": 256, "pyramid": False, "heatmap_sigma": 1.0} | model,
        training={"epochs": 4, "batch_size": 2, "lr": 1e-3, "eval_beam_size": 1},
        augmentation={"speed": [0.8, 1.2]},
    )


@pytest.mark.slow
def test_single_stream_learns(learnable, tmp_path):
    """Dev WER falls from ~100 to well below in 4 epochs (≈ 2 min on 2 cores)."""
    cfg = learning_config(learnable, tmp_path / "single")
    start = untrained_dev_wer(cfg)
    result = s2g.train(cfg)
    best = min(
        h["wer"] for h in json.loads((tmp_path / "single" / "metrics.json").read_text())["history"]
    )
    assert start >= 90 and best <= 60 and best <= start - 35, (start, best)
    assert result.scores["dev"]["wer"] == pytest.approx(best)  # beam 1: the best epoch's score


@pytest.mark.slow
def test_two_stream_learns_from_ground_truth_keypoints(learnable, tmp_path):
    """The same with the keypoint stream (63 ground-truth points), shorter: 2 epochs."""
    cfg = learning_config(learnable, tmp_path / "two", kind="two_stream")
    cfg = cfg.model_copy(update={"training": cfg.training.model_copy(update={"epochs": 2})})
    start = untrained_dev_wer(cfg)
    s2g.train(cfg)
    history = json.loads((tmp_path / "two" / "metrics.json").read_text())["history"]
    best = min(h["wer"] for h in history)
    assert start >= 90 and best <= start - 20, (start, best)
