"""The G2T stage on a tiny gloss/text corpus: it learns, writes its run folder, resumes
exactly, loads back through `load_translation_run`, and refuses bad configs in one line."""

from __future__ import annotations

import itertools
import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from slt_serve.errors import SltError
from slt_training.config import G2TConfig, S2TConfig, load_config, validate_config
from slt_training.data.annotations import load_split
from slt_training.data.text_data import TranslationDataset, concatenated_pairs, token_batches
from slt_training.runs import load_translation_run
from slt_training.stages import g2t
from slt_training.stages.translation_task import eval_batches, generate_options

REPO = Path(__file__).resolve().parents[1]
# glosses in object-subject-verb order, text in subject-verb-object order
SUBJECTS = {"ICH": "ich", "DU": "du", "OMA": "oma", "KIND": "das kind"}
VERBS = {"SEHEN": "sieht", "KAUFEN": "kauft", "MOEGEN": "mag", "HOLEN": "holt"}
OBJECTS = {"APFEL": "einen apfel", "BROT": "das brot", "WASSER": "wasser", "BUCH": "ein buch"}


def make_text_corpus(root: Path) -> Path:
    """64 sentences of a tiny grammar whose gloss order differs from its text order."""
    rows = [
        {"name": f"{s}-{v}-{o}".lower(), "gloss": f"{o} {s} {v}", "text": f"{st} {vt} {ot} ."}
        for (s, st), (v, vt), (o, ot) in itertools.product(
            SUBJECTS.items(), VERBS.items(), OBJECTS.items()
        )
    ]
    random.Random(0).shuffle(rows)
    root.mkdir(parents=True, exist_ok=True)
    for split, part in (("train", rows[:48]), ("dev", rows[48:56]), ("test", rows[56:])):
        (root / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in part))
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_text_corpus(tmp_path_factory.mktemp("text") / "ds")


def tiny(root: Path, run_dir: Path, **sections) -> G2TConfig:
    raw = {
        "stage": "g2t",
        "run_dir": str(run_dir),
        "data": {"root": str(root), "lang": "de"},
        "tokenizer": {"vocab_size": 100},
        "model": {"size": "tiny", "dropout": 0.0, "attention_dropout": 0.0},
        "generation": {"num_beams": 2, "max_length": 20},
        "training": {
            "epochs": 10,
            "batch_size": 4,
            "lr": 5e-3,
            "weight_decay": 0.0,
            "warmup_steps": 10,
            "cpu_threads": 1,
            "keep_best_n": 1,
        },
    }
    for name, values in sections.items():
        raw[name] = raw.get(name, {}) | values
    return validate_config(raw, G2TConfig, "test")


@pytest.fixture(scope="module")
def trained(corpus, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("g2t") / "run"
    return g2t.train(tiny(corpus, run_dir))


def test_g2t_learns_and_writes_its_run_folder(trained):
    history = json.loads((trained.run_dir / "metrics.json").read_text())["history"]
    first, best = history[0]["bleu4"], max(h["bleu4"] for h in history)
    assert first < 5 and best > 20, [h["bleu4"] for h in history]
    metrics = json.loads((trained.run_dir / "metrics.json").read_text())
    assert set(metrics["scores"]) == {"dev", "test"} and metrics["stage"] == "g2t"
    assert metrics["scores"]["dev"]["bleu4"] == trained.scores["dev"]["bleu4"] > 20
    assert metrics["generation"]["num_beams"] == 2
    for name in ("config.yaml", "model.json", "tokenizer.json", "checkpoints/best.json"):
        assert (trained.run_dir / name).is_file(), name
    rows = [json.loads(line) for line in (trained.run_dir / "predictions" / "dev.jsonl").open()]
    assert len(rows) == 8 and set(rows[0]) == {"name", "hyp", "ref"}
    spec = json.loads((trained.run_dir / "model.json").read_text())
    assert spec["stage"] == "g2t" and spec["s2g_run"] is None and spec["finetune_s2g"] is False
    assert spec["mbart_config"]["encoder_layers"] == 2 and spec["lang"] == "de"
    assert spec["translation_options"]["input"] == "gloss"


def test_load_translation_run_generates_what_the_trained_model_generates(trained, corpus):
    run = load_translation_run(trained.run_dir)
    assert run.stage == "g2t" and run.recognizer is None and run.s2g_run is None
    assert not run.model.training and run.metrics["scores"]["dev"]["bleu4"] > 20
    dev = TranslationDataset(load_split(corpus, "dev"), run.tokenizer)
    batch = next(iter(eval_batches(dev, run.tokenizer.pad_id)))
    model = trained.model.eval()
    ids = run.model.generate(options=run.generation, **batch.model_inputs())
    assert torch.equal(ids, model.generate(options=run.generation, **batch.model_inputs()))
    cfg = load_config(trained.run_dir / "config.yaml", G2TConfig)
    assert run.generation == generate_options(cfg.generation)
    hyps = run.tokenizer.decode_batch(ids.tolist())
    preds = {
        json.loads(line)["name"]: json.loads(line)["hyp"]
        for line in (trained.run_dir / "predictions" / "dev.jsonl").open()
    }
    assert [preds[n] for n in batch.names] == hyps


def test_stopped_and_resumed_equals_straight(corpus, tmp_path):
    weights = lambda run: load_file(str(run.best_checkpoint / "model.safetensors"))  # noqa: E731
    over = {"epochs": 3, "keep_best_n": 5}
    straight = g2t.train(tiny(corpus, tmp_path / "straight", training=over))
    stopped = g2t.train(tiny(corpus, tmp_path / "resumed", training=over | {"max_steps": 8}))
    assert stopped.stopped_early
    with pytest.raises(SltError, match="--resume"):
        g2t.train(tiny(corpus, tmp_path / "resumed", training=over))
    resumed = g2t.train(tiny(corpus, tmp_path / "resumed", training=over), resume=True)
    assert not resumed.stopped_early
    last = lambda d: d / "checkpoints" / "epoch-0003" / "model.safetensors"  # noqa: E731
    a, b = load_file(str(last(straight.run_dir))), load_file(str(last(resumed.run_dir)))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert weights(straight).keys() == weights(resumed).keys()


def test_token_batches_and_gloss_tokens(corpus, tmp_path):
    cfg = tiny(
        corpus,
        tmp_path / "run",
        data={"max_tokens": 120},
        tokenizer={"glosses": "tokens"},
        training={"epochs": 1},
    )
    result = g2t.train(cfg)
    run = load_translation_run(result.run_dir)
    assert run.tokenizer.glosses_as_tokens and "APFEL" in run.tokenizer.gloss_ids
    state = json.loads((result.run_dir / "checkpoints" / "latest.json").read_text())
    train = TranslationDataset(load_split(corpus, "train"), run.tokenizer)
    planned = list(token_batches(train.examples, 120))
    assert state["step"] == len(planned) and len(planned) != 48 // 4  # not batch_size clips
    for batch in planned:
        longest = max(train[i].source_len + len(train[i].target) for i in batch)
        assert longest * len(batch) <= 120


def test_concatenation_augmentation_trains_on_joined_pairs(corpus, tmp_path):
    clips = load_split(corpus, "train")
    pairs = concatenated_pairs(clips, 0.5, seed=3)
    assert len(pairs) == 24 and pairs == concatenated_pairs(clips, 0.5, seed=3)
    assert pairs != concatenated_pairs(clips, 0.5, seed=4)
    by_name = {c.name: c for c in clips}
    for pair in pairs:
        a, b = (by_name[n] for n in pair.name.split("+"))
        assert a is not b
        assert (pair.gloss, pair.text) == (f"{a.gloss} {b.gloss}", f"{a.text} {b.text}")
    cfg = tiny(
        corpus,
        tmp_path / "run",
        data={"max_tokens": 120, "concat_pairs": 0.5},
        training={"epochs": 1, "seed": 3},
    )
    result = g2t.train(cfg)
    tokenizer = load_translation_run(result.run_dir).tokenizer
    examples = TranslationDataset(clips + pairs, tokenizer).examples
    state = json.loads((result.run_dir / "checkpoints" / "latest.json").read_text())
    assert state["step"] == len(list(token_batches(examples, 120)))  # the pairs were trained on
    with pytest.raises(ValueError, match="concat_pairs"):
        S2TConfig.model_validate({"run_dir": "r", "s2g_run": "s", "data": {"concat_pairs": 0.5}})


def test_pretrained_folder_with_its_tokenizer_and_dropout(corpus, tmp_path):
    from slt_training.text.mbart import build_mbart, preset
    from slt_training.text.tokenizer import TokenizerOptions, train_tokenizer

    clips = load_split(corpus, "train")
    tok = train_tokenizer(
        [c.text for c in clips], [c.glosses for c in clips], TokenizerOptions(vocab_size=100)
    )
    folder = tmp_path / "pretrained"
    build_mbart(preset("tiny"), tok).save_pretrained(folder)
    tok.save(folder)
    cfg = tiny(
        corpus,
        tmp_path / "run",
        model={"pretrained": str(folder), "dropout": 0.3},
        training={"epochs": 1},
    )
    result = g2t.train(cfg)
    spec = json.loads((result.run_dir / "model.json").read_text())
    assert spec["mbart_config"]["dropout"] == 0.3
    assert (result.run_dir / "tokenizer.json").read_text() == (
        folder / "tokenizer.json"
    ).read_text()
    with pytest.raises(SltError, match="tokenizer.path"):
        tiny(corpus, tmp_path / "x", model={"pretrained": str(folder)}, tokenizer={"path": "t"})


def test_config_refusals(corpus, tmp_path):
    with pytest.raises(SltError, match="data.root"):
        validate_config({"run_dir": "r", "data": {}}, G2TConfig, "test")
    with pytest.raises(SltError, match="unknown key 'model.layers'"):
        tiny(corpus, tmp_path, model={"layers": 2})
    with pytest.raises(SltError, match="'model.size'"):
        tiny(corpus, tmp_path, model={"size": "huge"})
    cfg = tiny(corpus, tmp_path / "r", data={"lang": "xx"})
    with pytest.raises(SltError, match="tokenizer.lang_token"):
        g2t.train(cfg)


@pytest.mark.parametrize(
    "path", sorted(REPO.glob("configs/*/g2t.yaml")) + sorted(REPO.glob("configs/*/s2t.yaml"))
)
def test_shipped_configs_parse(path):
    schema = G2TConfig if path.name == "g2t.yaml" else S2TConfig
    cfg = load_config(path, schema)
    assert cfg.stage == path.stem


def test_reference_hyperparameters_in_the_phoenix_configs():
    cfg = load_config(REPO / "configs/phoenix-2014t/g2t.yaml", G2TConfig)
    assert cfg.model.pretrained is not None and cfg.model.label_smoothing == 0.2
    assert cfg.model.dropout == 0.3 and cfg.generation.num_beams == 5
    assert cfg.training.lr == 1e-5 and cfg.generation.length_penalty == 1.0
    s2t = load_config(REPO / "configs/phoenix-2014t/s2t.yaml", S2TConfig)
    assert s2t.g2t_run is not None and s2t.model.lr == 1e-5


def test_command_line(corpus, tmp_path):
    config = tmp_path / "g2t.yaml"
    cfg = tiny(corpus, tmp_path / "run", training={"epochs": 1})
    config.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    run = lambda *a: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "slt_serve.cli", "train", "g2t", str(config), *a],
        capture_output=True,
        text=True,
        timeout=300,
    )
    r = run()
    assert r.returncode == 0, r.stderr
    assert "dev BLEU-4" in r.stdout and "next: " in r.stdout and "slt train s2t" in r.stdout
    r = run()
    assert r.returncode == 2 and "--resume" in r.stderr and "Traceback" not in r.stderr


def test_recipe_shape_averaging_and_length_penalty_chosen_on_dev(corpus, tmp_path):
    from slt_training.averaging import average_weights

    cfg = tiny(
        corpus,
        tmp_path / "run",
        model={"encoder_layers": 1, "decoder_layers": 2, "d_model": 48, "ffn": 96, "heads": 4},
        generation={"length_penalties": [0.5, 1.0, 2.0]},
        training={
            "epochs": 6,
            "optimizer": "adamw",
            "weight_decay": 0.01,
            "schedule": "linear",
            "keep_best_n": 3,
            "average_best": 3,
            "max_minutes": 60,
            "clock": "cpu",
        },
    )
    result = g2t.train(cfg)
    spec = json.loads((result.run_dir / "model.json").read_text())
    shape = spec["mbart_config"]
    assert (shape["encoder_layers"], shape["decoder_layers"], shape["d_model"]) == (1, 2, 48)
    assert (shape["encoder_ffn_dim"], shape["encoder_attention_heads"]) == (96, 4)
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    averaged, sweep = metrics["averaged"], metrics["length_penalty_sweep"]
    assert len(averaged["checkpoints"]) == 3 and set(sweep) == {"0.5", "1.0", "2.0"}
    chosen = float(max(sweep, key=sweep.get))  # the first of the best on dev
    assert metrics["generation"]["length_penalty"] == chosen
    assert spec["generation"]["length_penalty"] == chosen  # what export and serving read
    assert metrics["scores"]["dev"]["bleu4"] == sweep[str(chosen)]
    best = json.loads((result.run_dir / "checkpoints" / "best.json").read_text())
    assert best["dir"] == (
        "averaged" if averaged["chosen"] else f"epoch-{metrics['best_epoch']:04d}"
    )
    run = load_translation_run(result.run_dir)
    assert run.generation.length_penalty == chosen and run.checkpoint.name == best["dir"]
    folders = [result.run_dir / "checkpoints" / t for t in averaged["checkpoints"]]
    mean = average_weights(folders)
    on_disk = load_file(str(result.run_dir / "checkpoints" / "averaged" / "model.safetensors"))
    assert all(torch.equal(on_disk[k], mean[k]) for k in mean)


def test_model_shape_refusals(corpus, tmp_path):
    with pytest.raises(SltError, match="d_model 50 is not a multiple of heads 4"):
        g2t.train(tiny(corpus, tmp_path / "r", model={"d_model": 50, "heads": 4}))
    with pytest.raises(SltError, match="leave encoder_layers unset"):
        tiny(corpus, tmp_path / "x", model={"pretrained": "somewhere", "encoder_layers": 2})
    with pytest.raises(SltError, match="keep_best_n"):
        tiny(corpus, tmp_path / "x", training={"average_best": 2, "keep_best_n": 1})


@pytest.mark.parametrize("path", sorted(REPO.glob("configs/*/g2t_scratch.yaml")))
def test_shipped_from_scratch_recipes(path):
    cfg = load_config(path, G2TConfig)
    training = cfg.training
    assert cfg.model.pretrained is None and len(cfg.generation.length_penalties) > 1
    assert training.average_best > 1 and training.schedule == "linear"
    assert training.optimizer == "adamw" and training.max_minutes and training.clock == "cpu"
