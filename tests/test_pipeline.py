"""`slt pipeline`: the config is checked up front, stages run in order, a finished stage is
skipped, a changed input re-runs what depends on it, an interrupted stage resumes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from test_s2g_data import make_corpus
from test_s2g_stage import tiny_data

from slt_pipeline.plan import load_plan
from slt_pipeline.runner import Pipeline
from slt_pipeline.state import PipelineState
from slt_serve.errors import SltError


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("synth") / "ds", clips=12)


def tiny_pipeline(root: Path, run_dir: Path, **changes) -> dict:
    """A CI-sized pipeline: every stage, tiny models, one short epoch each."""
    budget = {"epochs": 1, "batch_size": 4, "cpu_threads": 1, "dev_beam_size": 1}
    raw = {
        "stage": "pipeline",
        "run_dir": str(run_dir),
        "data": tiny_data(root) | {"lang": "en"},
        "prepare": {"workers": 1},
        "s2g": {
            "model": {"hidden_size": 32, "ff_size": 64},
            "training": budget | {"eval_beam_size": 2},
        },
        "g2t": {
            "tokenizer": {"vocab_size": 200},
            "model": {"size": "tiny"},
            "generation": {"num_beams": 2, "max_length": 24},
            "training": budget | {"epochs": 2, "lr": 3e-3},
        },
        "s2t": {
            "generation": {"num_beams": 2, "max_length": 24},
            "training": budget | {"lr": 3e-3},
        },
        "evaluate": {"max_clips": 3},
    }
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            raw[section] = raw.get(section, {}) | {name: value}
        else:
            raw[section] = value
    return raw


def write(tmp_path: Path, raw: dict, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_config_errors_name_the_key(tmp_path):
    root, run = tmp_path / "ds", tmp_path / "run"
    bad_data = tiny_pipeline(root, run, data__colour="red")
    with pytest.raises(SltError, match="unknown key 'data.colour'"):
        load_plan(write(tmp_path, bad_data))
    bad_stage = tiny_pipeline(root, run)
    bad_stage["s2g"]["model"]["widht"] = 0.5
    with pytest.raises(SltError, match=r"section s2g.*model\.widht"):
        load_plan(write(tmp_path, bad_stage))
    owned = tiny_pipeline(root, run)
    owned["s2t"]["s2g_run"] = "elsewhere"
    with pytest.raises(SltError, match="s2t.s2g_run' is set by the pipeline"):
        load_plan(write(tmp_path, owned))


def test_stage_configs_are_tied_together(tmp_path):
    plan = load_plan(write(tmp_path, tiny_pipeline(tmp_path / "ds", tmp_path / "run")))
    assert plan.s2g.run_dir == tmp_path / "run" / "s2g"
    assert plan.s2t.s2g_run == plan.s2g.run_dir and plan.s2t.g2t_run == plan.g2t.run_dir
    assert plan.s2t.data.lang == "en" and plan.g2t.data.root == tmp_path / "ds"
    no_g2t = load_plan(write(tmp_path, tiny_pipeline(tmp_path / "ds", tmp_path / "r", g2t=None)))
    assert no_g2t.g2t is None and no_g2t.s2t.g2t_run is None


def test_prepare_refuses_clips_without_glosses(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    clip = {"name": "a", "signer": "1", "gloss": "", "text": "xin chào", "video": "a.mp4"}
    (root / "train.jsonl").write_text(json.dumps(clip) + "\n", encoding="utf-8")
    raw = tiny_pipeline(root, tmp_path / "run")
    raw["data"]["lang"] = "vi"
    plan = load_plan(write(tmp_path, raw))
    with pytest.raises(SltError, match="slt data gloss-from-text .* --lang vi"):
        Pipeline(plan, say=lambda _: None).run()


def test_next_action_skips_resumes_or_moves_aside(tmp_path):
    """The decision behind every stage, without training: skip, resume, stale, run."""
    from slt_pipeline.state import move_aside, next_action
    from slt_training.config import save_config
    from slt_training.runs import LATEST, write_checkpoint_pointer

    plan = load_plan(write(tmp_path, tiny_pipeline(tmp_path / "ds", tmp_path / "run")))
    cfg, folder = plan.s2g, Path(plan.s2g.run_dir)
    state = PipelineState.load(plan.run_dir)
    assert next_action(state, "s2g", "h1", folder, cfg) == "run"
    folder.mkdir(parents=True)
    assert next_action(state, "s2g", "h1", folder, cfg) == "stale"  # nothing to resume
    save_config(cfg, folder)
    (folder / "checkpoints" / "epoch-0001").mkdir(parents=True)
    write_checkpoint_pointer(folder, LATEST, "epoch-0001")
    assert next_action(state, "s2g", "h1", folder, cfg) == "resume"
    other = cfg.model_copy(update={"training": cfg.training.model_copy(update={"lr": 0.5})})
    assert next_action(state, "s2g", "h1", folder, other) == "stale"  # another config
    state.record("s2g", "h1", 1.0)
    assert next_action(state, "s2g", "h1", folder, cfg) == "skip"
    assert next_action(state, "s2g", "h2", folder, cfg) == "stale"  # finished on other inputs
    assert next_action(state, "features", "h1", None, None) == "run"
    assert move_aside(folder).name == "s2g.stale-1" and not folder.exists()
    assert next_action(state, "s2g", "h1", folder, cfg) == "run"


@pytest.mark.slow
def test_stages_run_in_order_then_skip_then_rerun_what_changed(corpus, tmp_path):
    lines: list[str] = []
    raw = tiny_pipeline(corpus, tmp_path / "run", export={"enabled": False})
    plan = load_plan(write(tmp_path, raw))
    results = Pipeline(plan, say=lines.append).run()
    run = tmp_path / "run"
    for stage in ("s2g", "g2t", "s2t"):
        assert (run / stage / "metrics.json").is_file(), stage
    assert (run / "s2g" / "features" / "dev" / "index.json").is_file()
    assert set(results["s2t"]) == {"dev", "test"} and results["s2t"]["dev"]["wer"] is not None
    assert results["s2t"]["dev"]["bleu4"] is not None and "bundle" not in results
    assert (run / "results.md").read_text().count("| S2T (PyTorch) |") == 2
    assert any(line.startswith("s2g: ran") for line in lines)

    lines.clear()
    Pipeline(load_plan(write(tmp_path, raw)), say=lines.append).run()
    for stage in ("s2g", "features", "g2t", "s2t"):
        assert any(line.startswith(f"{stage}: skipped") for line in lines), (stage, lines)

    lines.clear()
    raw["g2t"]["training"]["lr"] = 2e-3
    Pipeline(load_plan(write(tmp_path, raw)), say=lines.append).run()
    assert any(line.startswith("s2g: skipped") for line in lines)
    assert any(line.startswith("g2t: ran") for line in lines), lines
    assert any(line.startswith("s2t: ran") for line in lines), lines
    assert (run / "g2t.stale-1" / "metrics.json").is_file()


@pytest.mark.slow
def test_interrupted_stage_resumes(corpus, tmp_path):
    raw = tiny_pipeline(corpus, tmp_path / "run", export={"enabled": False})
    raw["s2g"]["training"] |= {"epochs": 2, "max_steps": 1}
    plan = load_plan(write(tmp_path, raw))
    Pipeline(plan).run(until="s2g")  # stops after one step: a checkpoint, recorded finished
    state = PipelineState.load(tmp_path / "run")
    state.forget("s2g")  # as if the process had been killed before the stage ended
    lines: list[str] = []
    del raw["s2g"]["training"]["max_steps"]  # a budget: a resumed run may change it
    Pipeline(load_plan(write(tmp_path, raw)), say=lines.append).run(until="s2g")
    assert "s2g: resuming" in lines, lines
    metrics = json.loads((tmp_path / "run" / "s2g" / "metrics.json").read_text())
    assert metrics["steps"] > 1


def test_a_stage_section_may_name_a_stage_config_file(tmp_path):
    """The stage's own YAML is reused: its run folders and data root are the pipeline's."""
    s2g_file = tmp_path / "s2g.yaml"
    s2g_file.write_text(
        yaml.safe_dump(
            {
                "stage": "s2g",
                "run_dir": "runs/elsewhere",
                "data": {"root": "data/other", "frame_size": 64, "input_size": 48},
                "model": {"hidden_size": 64},
            }
        )
    )
    raw = tiny_pipeline(tmp_path / "ds", tmp_path / "run", s2g=str(s2g_file))
    del raw["data"]["input_size"], raw["data"]["frame_size"]
    plan = load_plan(write(tmp_path, raw))
    assert plan.s2g.run_dir == tmp_path / "run" / "s2g" and plan.s2g.data.root == tmp_path / "ds"
    assert plan.s2g.data.input_size == 48 and plan.s2g.model.hidden_size == 64
    s2g_file.write_text(yaml.safe_dump({"stage": "g2t", "run_dir": "x"}))
    with pytest.raises(SltError, match="not a s2g config"):
        load_plan(write(tmp_path, raw))
    raw["s2g"] = str(tmp_path / "missing.yaml")
    with pytest.raises(SltError, match="names no file"):
        load_plan(write(tmp_path, raw))


def test_the_custom_template_lists_every_key_and_loads():
    """configs/custom.yaml is the user's starting point: no stage key may be missing from it."""
    from slt_training.config import DataConfig, G2TConfig, S2GConfig, S2TConfig, TextDataConfig

    path = Path(__file__).resolve().parents[1] / "configs" / "custom.yaml"
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert set(raw["data"]) == set(DataConfig.model_fields) | set(TextDataConfig.model_fields)
    stages = {"s2g": S2GConfig, "g2t": G2TConfig, "s2t": S2TConfig}
    for name, schema in stages.items():
        for section, value in raw[name].items():
            fields = schema.model_fields[section].annotation
            if isinstance(value, dict):
                assert set(value) == set(fields.model_fields), (name, section)
        own = set(schema.model_fields) - {"stage", "run_dir", "s2g_run", "g2t_run", "data"}
        assert set(raw[name]) == own, name
    plan = load_plan(path)
    assert plan.s2t.data.lang == "vi" and plan.s2g.training.mixed_precision == "fp16"


def test_overrides_reach_into_stage_sections_inline_or_file(tmp_path):
    s2g_file = tmp_path / "s2g.yaml"
    s2g_file.write_text(yaml.safe_dump({"stage": "s2g", "run_dir": "x", "data": {"root": "y"}}))
    raw = tiny_pipeline(tmp_path / "ds", tmp_path / "run", s2g=str(s2g_file))
    overrides = ["s2g.training.max_minutes=30", "g2t.model.dropout=0.3", "run_dir=" + str(tmp_path)]
    plan = load_plan(write(tmp_path, raw), overrides)
    assert plan.s2g.training.max_minutes == 30 and plan.g2t.model.dropout == 0.3
    assert plan.s2g.run_dir == tmp_path / "s2g"


def test_a_recipe_may_carry_its_own_overrides(tmp_path):
    raw = tiny_pipeline(tmp_path / "ds", tmp_path / "run")
    raw["overrides"] = ["s2g.training.max_steps=7", "export.quantize=int8"]
    plan = load_plan(write(tmp_path, raw), ["s2g.training.max_steps=9"])
    assert plan.s2g.training.max_steps == 9 and plan.config.export.quantize == "int8"
    raw["overrides"] = "s2g.training.max_steps=7"
    with pytest.raises(SltError, match="list of key=value"):
        load_plan(write(tmp_path, raw))
