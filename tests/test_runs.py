"""Run folders (`slt_training.runs`): typed readers and writers, the refusals naming the
command to run, checkpoints written from weights trained elsewhere, and old runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from slt_serve.errors import SltError
from slt_serve.fileio import file_sha256
from slt_training import runs
from slt_training.config import S2GConfig, validate_config
from slt_training.models.translation import GenerateOptions, TranslationOptions

SPEC = runs.S2GInputSpec(
    frame_size=64,
    input_size=56,
    mean=(0.4, 0.5, 0.6),
    std=(0.2, 0.2, 0.3),
    motion_channels=True,
    frame_stride=2,
    keypoints=(0, 5, 9),
    eval_crop=0.9,
    fps=29.97,
)


def s2g_run(tmp_path: Path, root: Path | None = None) -> runs.S2GRun:
    raw = {"run_dir": str(tmp_path / "run"), "data": {"root": str(root or tmp_path / "ds")}}
    cfg = validate_config(raw, S2GConfig, "test")
    run = runs.S2GRun.of(cfg)
    run.run_dir.mkdir(parents=True)
    return run


class Tied(nn.Module):
    """Two layers sharing one weight, as mBART's embedding and LM head do."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Linear(4, 3, bias=False)
        self.head = nn.Linear(4, 3, bias=False)
        self.head.weight = self.embed.weight
        self.scale = nn.Parameter(torch.randn(3))


def test_input_spec_round_trips_and_an_old_spec_reads_with_defaults(tmp_path):
    run = s2g_run(tmp_path)
    path = run.write_input_spec(SPEC)
    assert path.name == runs.INPUT_SPEC_FILE and json.loads(path.read_text())["fps"] == 29.97
    assert run.input_spec() == SPEC
    options = run.clip_options()
    assert options.keypoints == (0, 5, 9) and options.frame_stride == 2
    assert options.seed == run.config.training.seed
    old = SPEC.to_json()
    del old["fps"], old["frame_stride"]  # written before either was saved
    path.write_text(json.dumps(old))
    assert run.input_spec().fps is None and run.input_spec().frame_stride == 1
    path.write_text(json.dumps({"frame_size": 64}))
    with pytest.raises(SltError, match="not an S2G input spec"):
        run.input_spec()


def test_fps_is_the_saved_one_and_an_old_run_falls_back(tmp_path, caplog):
    run = s2g_run(tmp_path)
    run.write_input_spec(SPEC)
    assert run.fps() == 29.97
    run.write_input_spec(runs.S2GInputSpec(**{**SPEC.__dict__, "fps": None}))
    assert run.fps() == runs.DEFAULT_FPS  # no dataset to probe: the default, with a warning
    assert "assuming 25 fps" in caplog.text


def test_refusals_name_the_command_to_run(tmp_path):
    with pytest.raises(SltError, match="not an S2G run.*slt train s2g"):
        runs.S2GRun.open(tmp_path)
    run = s2g_run(tmp_path)
    with pytest.raises(SltError, match="no trained S2G checkpoint.*slt train s2g"):
        run.best_checkpoint()
    with pytest.raises(SltError, match="input_spec.json: missing.*slt train s2g"):
        run.input_spec()
    with pytest.raises(SltError, match="not a G2T/S2T run.*slt train g2t"):
        runs.TranslationRun.open(tmp_path)
    with pytest.raises(SltError, match="neither a translation run.*nor an S2G run"):
        runs.open_run(tmp_path)
    with pytest.raises(SltError, match="no run folder"):
        runs.open_run(tmp_path / "absent")


def test_a_checkpoint_written_from_weights_reads_back(tmp_path):
    run = s2g_run(tmp_path)
    model = Tied()
    folder = runs.write_checkpoint(run.run_dir, "imported", model, metric=1.5)
    assert run.best_checkpoint() == folder == runs.checkpoint_pointer(run.run_dir, runs.LATEST)
    pointer = json.loads((run.run_dir / runs.CHECKPOINTS / runs.BEST).read_text())
    assert pointer == {"dir": "imported", "metric": 1.5}
    assert run.weights_sha256() == file_sha256(folder / runs.WEIGHTS_FILE)
    state = runs.read_weights(folder)
    assert len(state) == 2  # the tied weight is stored once
    again = Tied()
    runs.load_state(again, state, folder)
    assert torch.equal(again.head.weight, model.embed.weight)
    assert torch.equal(again.scale, model.scale)
    with pytest.raises(SltError, match="unexpected"):
        runs.load_state(nn.Linear(4, 3), state, folder)


def test_metrics_and_predictions_round_trip(tmp_path):
    run = s2g_run(tmp_path)
    assert run.metrics() == {} and run.predictions("dev") == {}
    run.write_metrics({"scores": {"dev": {"wer": 12.5}}})
    rows = [("a", "HAUS GROSS", "HAUS"), ("b", "", "ICH")]
    path = run.write_predictions("dev", rows)
    assert path == run.run_dir / runs.PREDICTIONS_DIR / "dev.jsonl"
    assert run.metrics()["scores"]["dev"]["wer"] == 12.5
    assert run.predictions("dev") == {"a": "HAUS GROSS", "b": ""}


def test_model_spec_round_trips_and_a_wrong_stage_is_refused(tmp_path):
    spec = runs.ModelSpec(
        mbart_config={"d_model": 8},
        translation_options=TranslationOptions(input="features", feature_dim=32),
        generation=GenerateOptions(num_beams=2),
        stage="s2t",
        lang="de",
        s2g_run=str(tmp_path / "s2g"),
        s2g_checkpoint_sha256="0" * 64,
    )
    run = runs.TranslationRun.create(tmp_path / "t", spec)
    same = lambda a, b: json.dumps(a.to_json()) == json.dumps(b.to_json())  # noqa: E731
    assert same(runs.TranslationRun.open(run.run_dir).spec, spec)
    assert isinstance(runs.open_run(run.run_dir), runs.TranslationRun)
    with pytest.raises(SltError, match="not an S2G run"):
        run.s2g()  # the S2G run it names is not there
    with pytest.raises(SltError, match="no trained S2T checkpoint.*slt train s2t"):
        run.best_checkpoint()
    obj = spec.to_json() | {"stage": "s2g"}
    (run.run_dir / runs.MODEL_FILE).write_text(json.dumps(obj))
    with pytest.raises(SltError, match="stage 's2g'"):
        runs.TranslationRun.open(run.run_dir)


def test_a_new_run_folder_never_overwrites_another(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    run = s2g_run(tmp_path, root)
    with pytest.raises(SltError, match="no 'train' split.*slt data"):
        runs.prepare_run_dir(run.config, False, root)
    for split in ("train", "dev"):
        (root / f"{split}.jsonl").write_text("")
    assert runs.prepare_run_dir(run.config, False, root) == run.run_dir
    assert run.config_path.is_file()
    runs.write_checkpoint(run.run_dir, "epoch-0001", nn.Linear(2, 2))
    with pytest.raises(SltError, match="already holds a training run; pass --resume"):
        runs.prepare_run_dir(run.config, False, root)
    assert runs.prepare_run_dir(run.config, True, root) == run.run_dir
