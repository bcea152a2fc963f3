"""The S2T stage on a tiny S2G run: refusals that name the stage to run first, training on
features (mBART from a G2T run), end-to-end fine-tuning of the recognizer, and the run
folder read back by `load_translation_run`."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from test_s2g_data import make_corpus
from test_s2g_stage import tiny as tiny_s2g

from slt_serve.errors import SltError
from slt_training.config import G2TConfig, S2TConfig, validate_config
from slt_training.runs import S2GRun, load_translation_run
from slt_training.stages import features, g2t, s2g, s2t
from slt_training.stages.translation_task import eval_batches

TRAINING = {
    "epochs": 2,
    "batch_size": 4,
    "lr": 3e-3,
    "weight_decay": 0.0,
    "cpu_threads": 1,
    "keep_best_n": 1,
}


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


@pytest.fixture(scope="module")
def s2g_run(tmp_path_factory) -> Path:
    """A tiny S2G run (one step) with its features for train, dev and test."""
    base = tmp_path_factory.mktemp("s2t")
    corpus = make_corpus(base / "ds", clips=12)
    cfg = tiny_s2g(corpus, base / "s2g", training={"max_steps": 1})
    s2g.train(cfg)
    features.extract(cfg, "train,dev,test")
    return base / "s2g"


@pytest.fixture(scope="module")
def g2t_run(s2g_run) -> Path:
    """A tiny G2T run on the same corpus (its glosses and text)."""
    root = yaml.safe_load((s2g_run / "config.yaml").read_text())["data"]["root"]
    raw = {
        "run_dir": str(s2g_run.parent / "g2t"),
        "data": {"root": root, "lang": "en"},
        "tokenizer": {"vocab_size": 150},
        "model": {"size": "tiny"},
        "generation": {"num_beams": 2, "max_length": 20},
        "training": TRAINING,
    }
    g2t.train(validate_config(raw, G2TConfig, "test"))
    return s2g_run.parent / "g2t"


def config(run_dir: Path, s2g_run: Path, **top) -> S2TConfig:
    raw = {
        "run_dir": str(run_dir),
        "s2g_run": str(s2g_run),
        "data": {"lang": "en"},
        "tokenizer": {"vocab_size": 150},
        "model": {"size": "tiny"},
        "generation": {"num_beams": 2, "max_length": 20},
        "training": TRAINING,
    }
    raw.update(top)
    return validate_config(raw, S2TConfig, "test")


def copy_run(s2g_run: Path, dest: Path, features: bool = True) -> Path:
    ignore = None if features else shutil.ignore_patterns("features")
    shutil.copytree(s2g_run, dest, ignore=ignore)
    return dest


def test_refused_without_a_trained_s2g_run(s2g_run, tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(SltError, match="slt train s2g"):
        s2t.train(config(tmp_path / "a", empty))
    untrained = tmp_path / "untrained"
    untrained.mkdir()
    shutil.copy(s2g_run / "config.yaml", untrained / "config.yaml")
    with pytest.raises(SltError, match=r"no trained S2G checkpoint.*slt train s2g"):
        s2t.train(config(tmp_path / "b", untrained))
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_refused_without_features_or_with_features_of_another_checkpoint(s2g_run, tmp_path):
    bare = copy_run(s2g_run, tmp_path / "bare", features=False)
    with pytest.raises(SltError, match=r"no features for 'train'.*slt features"):
        s2t.train(config(tmp_path / "a", bare))
    other = copy_run(s2g_run, tmp_path / "other")
    index = other / "features" / "dev" / "index.json"
    spec = json.loads(index.read_text())
    spec["checkpoint_sha256"] = "0" * 64
    index.write_text(json.dumps(spec))
    with pytest.raises(SltError, match=r"another S2G checkpoint.*slt features"):
        s2t.train(config(tmp_path / "b", other))
    # fine-tuning runs the recognizer on video: it needs no features
    assert config(tmp_path / "c", bare, finetune_s2g=True).finetune_s2g


def test_refused_without_a_g2t_checkpoint(s2g_run, tmp_path):
    with pytest.raises(SltError, match="slt train g2t"):
        s2t.train(config(tmp_path / "a", s2g_run, g2t_run=str(tmp_path / "nothing")))
    with pytest.raises(SltError, match="g2t_run gives the mBART"):
        config(tmp_path / "a", s2g_run, g2t_run="x", model={"pretrained": "p"})


def test_command_line_refusal_is_one_line(s2g_run, tmp_path):
    path = tmp_path / "s2t.yaml"
    bare = copy_run(s2g_run, tmp_path / "bare", features=False)
    path.write_text(yaml.safe_dump(config(tmp_path / "run", bare).model_dump(mode="json")))
    r = subprocess.run(
        [sys.executable, "-m", "slt_serve.cli", "train", "s2t", str(path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.startswith("error: ") and "slt features" in r.stderr


def test_trains_on_features_from_the_g2t_run(s2g_run, g2t_run, tmp_path):
    result = s2t.train(config(tmp_path / "run", s2g_run, g2t_run=str(g2t_run)))
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["stage"] == "s2t" and set(metrics["scores"]) == {"dev", "test"}
    assert {"bleu1", "bleu4", "rouge_l"} <= set(metrics["scores"]["dev"])
    assert (result.run_dir / "predictions" / "test.jsonl").is_file()
    tokenizer = (result.run_dir / "tokenizer.json").read_text()
    assert tokenizer == (g2t_run / "tokenizer.json").read_text()
    spec = json.loads((result.run_dir / "model.json").read_text())
    digest = S2GRun.open(s2g_run).weights_sha256()
    assert spec["stage"] == "s2t" and spec["s2g_checkpoint_sha256"] == digest
    assert spec["translation_options"]["input"] == "features" and not spec["finetune_s2g"]
    assert Path(spec["s2g_run"]) == s2g_run.resolve()
    # the round trip: the run folder alone rebuilds the model that generates the same ids
    run = load_translation_run(result.run_dir)
    assert run.stage == "s2t" and run.recognizer is None and run.s2g_run == s2g_run.resolve()
    split = features.FeatureSplit.open(s2g_run / "features" / "dev", digest)
    from slt_training.data.annotations import load_split
    from slt_training.data.text_data import TranslationDataset

    root = Path(s2g_config(s2g_run).data.root)
    dev = TranslationDataset(load_split(root, "dev"), run.tokenizer, lambda n: split.clip(n)[0])
    batch = next(iter(eval_batches(dev, run.tokenizer.pad_id)))
    ids = run.model.generate(options=run.generation, **batch.model_inputs())
    expected = result.model.eval().generate(options=run.generation, **batch.model_inputs())
    assert torch.equal(ids, expected)


def test_starts_from_the_g2t_weights(s2g_run, g2t_run, tmp_path):
    from slt_training.runs import read_weights, split_state

    cfg = config(tmp_path / "run", s2g_run, g2t_run=str(g2t_run))
    g2t_weights = split_state(read_weights(load_translation_run(g2t_run).checkpoint), "mbart")
    mbart = s2t.initial_mbart(
        cfg, load_translation_run(g2t_run).tokenizer, s2t.check_g2t_run(g2t_run)
    )
    state = mbart.state_dict()
    assert all(torch.equal(state[k], v) for k, v in g2t_weights.items())


def test_fine_tunes_the_recognizer_end_to_end(s2g_run, tmp_path):
    training = TRAINING | {"epochs": 1, "batch_size": 2}
    cfg = config(tmp_path / "run", s2g_run, finetune_s2g=True, ctc_weight=0.5, training=training)
    result = s2t.train(cfg)
    assert isinstance(result.model, s2t.SignTranslator)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"dev", "test"}
    run = load_translation_run(result.run_dir)
    assert run.finetune_s2g and run.recognizer is not None and not run.recognizer.training
    before = s2g_weights(s2g_run)
    after = run.recognizer.state_dict()
    assert any(not torch.equal(after[k], v) for k, v in before.items() if v.is_floating_point())
    # the rebuilt pair generates what the trained SignTranslator generates
    rebuilt = s2t.SignTranslator(run.recognizer, run.model, 0.0).eval()
    data = s2t.SignTextClips(
        s2t.SignClips(
            Path(s2g_config(s2g_run).data.root),
            "dev",
            S2GRun.open(s2g_run).vocab(),
            S2GRun.open(s2g_run).clip_options(),
        ),
        run.tokenizer,
    )
    batch = s2t.collate_sign_text([data[i] for i in range(len(data))])
    assert torch.equal(
        rebuilt.generate(batch, run.generation), result.model.eval().generate(batch, run.generation)
    )


def s2g_config(s2g_run: Path):
    from slt_training.config import S2GConfig, load_config

    return load_config(s2g_run / "config.yaml", S2GConfig)


def s2g_weights(s2g_run: Path) -> dict:
    from safetensors.torch import load_file

    from slt_training.runs import WEIGHTS_FILE

    return load_file(str(S2GRun.open(s2g_run).best_checkpoint() / WEIGHTS_FILE))
