"""Experiment configs: one-line errors naming the key, overrides, every shipped config parses."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from slt_serve.errors import SltError
from slt_training.config import (
    CONFIG_COPY,
    S2GConfig,
    config_differences,
    config_hash,
    load_config,
    save_config,
)

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, body: dict) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(body), encoding="utf-8")
    return path


BASE = {"run_dir": "runs/x", "data": {"root": "data/x", "frame_size": 64, "input_size": 64}}


def error(tmp_path: Path, body: dict, overrides: tuple[str, ...] = ()) -> str:
    with pytest.raises(SltError) as info:
        load_config(write(tmp_path, body), S2GConfig, overrides)
    message = str(info.value)
    assert "\n" not in message and str(tmp_path / "exp.yaml") in message
    return message


def test_defaults_live_in_code(tmp_path):
    cfg = load_config(write(tmp_path, BASE), S2GConfig)
    assert cfg.training.lr == 1e-3 and cfg.training.betas == (0.9, 0.998)
    assert cfg.model.kind == "single_stream" and cfg.augmentation.max_frames == 400


def test_unknown_key_lists_the_valid_ones(tmp_path):
    message = error(tmp_path, BASE | {"training": {"lrr": 1}})
    assert "unknown key 'training.lrr'" in message and "lr," in message and "epochs" in message


def test_bad_choice_lists_the_choices(tmp_path):
    message = error(tmp_path, BASE | {"model": {"kind": "three_stream"}})
    assert "model.kind" in message and "single_stream" in message and "two_stream" in message


def test_dependent_settings_are_checked_together(tmp_path):
    too_big = {"run_dir": "r", "data": {"root": "d", "frame_size": 64, "input_size": 128}}
    assert "exceeds data.frame_size" in error(tmp_path, too_big)
    frozen = BASE | {"model": {"frozen_blocks": 1}}
    assert "pretrained_s3d" in error(tmp_path, frozen)
    odd = {"run_dir": "r", "data": {"root": "d", "frame_size": 64, "input_size": 63}}
    assert "even" in error(tmp_path, odd | {"model": {"kind": "two_stream"}})
    subset = BASE | {"model": {"kind": "two_stream"}}
    assert "coco_wholebody_79" in error(tmp_path, subset, ("data.keypoints=face",))
    assert "speed" in error(tmp_path, BASE | {"augmentation": {"speed": [1.5, 0.5]}})
    narrow = BASE | {"model": {"width": 0.25, "pretrained_s3d": "s3d.pt"}}
    assert "model.width 0.25" in error(tmp_path, narrow)
    assert "model.width" in error(tmp_path, BASE | {"model": {"width": 0}})
    assert "data.frame_stride" in error(tmp_path, BASE, ("data.frame_stride=0",))


def test_overrides_are_validated_like_the_file(tmp_path):
    path = write(tmp_path, BASE)
    cfg = load_config(path, S2GConfig, ["training.lr=1e-4", "augmentation.speed=[0.8, 1.2]"])
    assert cfg.training.lr == 1e-4 and cfg.augmentation.speed == (0.8, 1.2)
    assert "unknown key 'training.rate'" in error(tmp_path, BASE, ("training.rate=1",))
    assert "training.lr" in error(tmp_path, BASE, ("training.lr=fast",))
    with pytest.raises(SltError, match="section.key=value"):
        load_config(path, S2GConfig, ["training.lr"])


def test_yaml_no_means_no_mixed_precision(tmp_path):
    cfg = load_config(write(tmp_path, BASE | {"training": {"mixed_precision": False}}), S2GConfig)
    assert cfg.training.mixed_precision == "no"


def test_config_copy_and_hash(tmp_path):
    cfg = load_config(write(tmp_path, BASE), S2GConfig)
    copy = save_config(cfg, tmp_path / "run")
    assert copy.name == CONFIG_COPY
    again = load_config(copy, S2GConfig)
    assert config_hash(again) == config_hash(cfg)
    other = load_config(copy, S2GConfig, ["training.seed=3"])
    assert config_differences(cfg, other) == ["training.seed"]
    assert config_hash(other) != config_hash(cfg)
    longer = load_config(copy, S2GConfig, ["training.max_minutes=90", "training.num_workers=4"])
    assert config_hash(longer) == config_hash(cfg)  # budgets may change on --resume


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(SltError, match="no config file"):
        load_config(tmp_path / "none.yaml", S2GConfig)
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [unclosed\n", encoding="utf-8")
    with pytest.raises(SltError, match="not valid YAML"):
        load_config(bad, S2GConfig)


SHIPPED = sorted(
    p for p in (REPO / "configs").rglob("*.yaml") if yaml.safe_load(p.read_text())["stage"] == "s2g"
)


def test_the_shipped_s2g_configs_are_all_there():
    names = {str(p.relative_to(REPO / "configs")) for p in SHIPPED}
    assert {
        "synth/s2g_single.yaml",
        "synth/s2g_two.yaml",
        "phoenix-2014t/s2g_single.yaml",
        "phoenix-2014t/s2g_two.yaml",
        "csl-daily/s2g_single.yaml",
        "csl-daily/s2g_two.yaml",
        "gpu16gb/s2g_single.yaml",
    } <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(REPO / "configs")))
def test_every_shipped_config_parses(path):
    cfg = load_config(path, S2GConfig)
    assert cfg.data.input_size <= cfg.data.frame_size


def test_reference_hyperparameters_in_the_corpus_configs():
    for name in ("phoenix-2014t", "csl-daily"):
        for kind in ("single", "two"):
            cfg = load_config(REPO / "configs" / name / f"s2g_{kind}.yaml", S2GConfig)
            t = cfg.training
            assert (t.lr, t.weight_decay, t.betas, t.epochs, t.batch_size) == (
                1e-3,
                1e-3,
                (0.9, 0.998),
                40,
                1,
            )
            assert (t.dev_beam_size, t.eval_beam_size, t.keep_best_n) == (1, 5, 5)
            assert cfg.model.frozen_blocks == 1 and cfg.augmentation.speed == (0.5, 1.5)


def test_stage_script_entry_point(tmp_path, capsys):
    """`python -m slt_training.stages.<stage>`: CONFIG, --resume, --override reach `train`;
    a bad config is one `error:` line and exit code 2."""
    from slt_training.stages.script import stage_main

    calls = []
    argv = [str(write(tmp_path, BASE)), "--resume", "--override", "training.lr=0.5"]
    stage_main("S2G", S2GConfig, lambda cfg, resume: calls.append((cfg, resume)), argv)
    [(cfg, resume)] = calls
    assert resume and cfg.training.lr == 0.5 and cfg.run_dir == Path("runs/x")
    with pytest.raises(SystemExit) as info:
        stage_main("S2G", S2GConfig, lambda cfg, resume: None, [str(tmp_path / "none.yaml")])
    assert info.value.code == 2
    assert capsys.readouterr().err.startswith(f"error: {tmp_path / 'none.yaml'}")
