"""`slt pipeline CONFIG`: prepare → S2G → features → G2T → S2T → export → evaluate, in order.

One YAML holds the whole experiment (configs/custom.yaml is the template): a `data`
section shared by every stage, and one section per stage in the shape of that
stage's own config (`slt train s2g|g2t|s2t`), less `run_dir` and the paths that
tie the stages together, which the pipeline fills in:

    RUN_DIR/s2g/        S2G run (checkpoints, metrics.json, features/<split>/)
    RUN_DIR/g2t/        G2T run
    RUN_DIR/s2t/        S2T run, initialised from s2g/ and g2t/
    RUN_DIR/bundle/     the exported ONNX bundle
    RUN_DIR/results.json, results.md   the final WER / BLEU / ROUGE-L table
    RUN_DIR/pipeline.json              what each stage ran on (hashes) and when it finished

Every stage config is validated before anything slow starts. A stage is skipped when
`pipeline.json` records it finished on the same inputs (the stage config's hash, the
dataset's annotation files, the checkpoints it starts from); a stage that was
interrupted resumes from its latest checkpoint; a stage whose inputs changed is run
again, its old folder kept beside it as `<stage>.stale-N`. So the order that matters
(S2G before S2T) cannot be got wrong, and re-running the command after a crash or on a
fresh notebook continues where it stopped.

This module lives in `slt_export` because it is the one package that may import both
the training stack and the exporter (data flows one way).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import Field

from slt_serve.errors import SltError
from slt_serve.fileio import atomic_write, write_json
from slt_training.config import (
    DataConfig,
    G2TConfig,
    S2GConfig,
    S2TConfig,
    Section,
    TextDataConfig,
    _apply_override,
    config_hash,
    validate_config,
)

log = logging.getLogger(__name__)

STATE_FILE = "pipeline.json"
RESULTS_JSON, RESULTS_MD = "results.json", "results.md"
STAGES = ("prepare", "s2g", "features", "g2t", "s2t", "export", "evaluate")


class PrepareConfig(Section):
    """The data steps the pipeline runs itself (both are no-ops once done)."""

    vocab: bool = True  # build gloss_vocab.json from the train split when it is missing
    frames: bool = True  # cache frames at data.frame_size (resumable; `slt data frames`)
    workers: int | None = Field(None, ge=1)  # clips encoded in parallel; None: CPU cores


class ExportConfig(Section):
    """The bundle the S2T run becomes (`slt export model`)."""

    enabled: bool = True
    quantize: Literal["int8"] | None = None  # onnxruntime dynamic quantisation
    pose: Path | None = None  # two_stream: pose.onnx (`slt export pose`) the bundle carries
    name: str | None = None  # the model's name in the bundle and every answer; None: run_dir's


class EvaluateConfig(Section):
    """The final table: the stages' own scores, and the exported bundle on real videos."""

    bundle: bool = True  # also translate the dev/test videos with the bundle (onnxruntime)
    max_clips: int | None = Field(None, ge=1)  # bundle scoring: at most this many clips a split


class PipelineConfig(Section):
    """The whole experiment; stage sections are validated by their own schemas."""

    stage: Literal["pipeline"] = "pipeline"
    run_dir: Path
    data: dict[str, Any]  # S2G data keys (root, frame_size, ...) and text keys (lang, ...)
    prepare: PrepareConfig = PrepareConfig()
    # A stage section is inline (model, training, ... as in `slt train STAGE`), or the path
    # of a stage config file whose run_dir and stage-linking paths the pipeline replaces.
    s2g: dict[str, Any] | Path = {}  # model, training, augmentation
    features: dict[str, Any] = {}  # splits: "train,dev,test"
    g2t: dict[str, Any] | Path | None = {}  # tokenizer, model, generation, training; null: none
    s2t: dict[str, Any] | Path = {}  # finetune_s2g, ctc_weight, generation, training, ...
    export: ExportConfig = ExportConfig()
    evaluate: EvaluateConfig = EvaluateConfig()
    # `key=value` lines as --override takes them, applied before the command line's: how a
    # recipe changes a few keys of a stage file it names (e.g. s2g.training.max_steps=1800)
    overrides: list[str] = []


@dataclass(frozen=True)
class Plan:
    """The pipeline config resolved into the stage configs it runs."""

    config: PipelineConfig
    source: Path
    s2g: S2GConfig
    g2t: G2TConfig | None
    s2t: S2TConfig
    feature_splits: str

    @property
    def run_dir(self) -> Path:
        return Path(self.config.run_dir)

    @property
    def name(self) -> str:
        """The model's name in its bundle and in every served answer."""
        return self.config.export.name or self.run_dir.name

    @property
    def bundle_dir(self) -> Path:
        return self.run_dir / "bundle"


def load_plan(path: str | os.PathLike, overrides: list[str] | tuple[str, ...] = ()) -> Plan:
    """Read and check a pipeline YAML: every stage's config is validated here, up front."""
    from slt_training.config import load_config

    path = Path(path)
    overrides = [*_file_overrides(path), *overrides]
    # `s2g.training.lr=…` reaches into a stage section, inline or a file: applied per stage
    by_stage: dict[str, list[str]] = {name: [] for name in ("s2g", "g2t", "s2t")}
    rest = []
    for item in overrides:
        head = item.split(".", 1)[0]
        (by_stage[head] if head in by_stage and "." in item.partition("=")[0] else rest).append(
            item
        )
    cfg = load_config(path, PipelineConfig, rest)
    run_dir = Path(cfg.run_dir)
    s2g_data, text_data = _split_data(cfg.data, path)
    s2g = _stage_config(
        cfg.s2g, S2GConfig, s2g_data, {"run_dir": run_dir / "s2g"}, path, by_stage["s2g"]
    )
    g2t = None
    if cfg.g2t is not None:
        g2t = _stage_config(
            cfg.g2t, G2TConfig, text_data, {"run_dir": run_dir / "g2t"}, path, by_stage["g2t"]
        )
    links = {
        "run_dir": run_dir / "s2t",
        "s2g_run": run_dir / "s2g",
        "g2t_run": None if g2t is None else run_dir / "g2t",
    }
    s2t = _stage_config(cfg.s2t, S2TConfig, text_data, links, path, by_stage["s2t"])
    unknown = set(cfg.features) - {"splits"}
    if unknown:
        raise SltError(f"{path}: unknown key 'features.{sorted(unknown)[0]}'; valid keys: splits")
    splits = str(cfg.features.get("splits", "train,dev,test"))
    return Plan(cfg, path, s2g, g2t, s2t, splits)


def _file_overrides(path: Path) -> list[str]:
    """The config file's own `overrides:` list (validated again with the whole file)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return []  # load_config reports the unreadable file
    items = raw.get("overrides") if isinstance(raw, dict) else None
    if items is None:
        return []
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise SltError(f"{path}: 'overrides' must be a list of key=value lines")
    return items


def _split_data(data: dict[str, Any], source: Path) -> tuple[dict, dict]:
    """The shared `data` section → the S2G stage's keys and the text stages' keys."""
    video_keys, text_keys = set(DataConfig.model_fields), set(TextDataConfig.model_fields)
    for key in data:
        if key not in video_keys | text_keys:
            valid = ", ".join(sorted(video_keys | text_keys))
            raise SltError(f"{source}: unknown key 'data.{key}'; valid keys here: {valid}")
    if "root" not in data:
        raise SltError(f"{source}: missing key 'data.root' (the dataset root with train.jsonl)")
    s2g = {k: v for k, v in data.items() if k in video_keys}
    text = {k: v for k, v in data.items() if k in text_keys}
    return s2g, text


LINKS = ("run_dir", "s2g_run", "g2t_run")  # set by the pipeline: where each stage runs


def _stage_config(
    section: dict[str, Any] | Path,
    schema: type[Section],
    shared_data: dict[str, Any],
    links: dict[str, Path | None],
    source: Path,
    overrides: list[str] = (),
):
    """One stage's config: the section (inline, or a stage YAML file) with the shared data
    section under it and the pipeline's run folders in place of the file's own."""
    name = schema.model_fields["stage"].default
    if isinstance(section, Path):
        file = section
        if not file.is_file():
            raise SltError(f"{source}: '{name}: {file}' names no file (paths are relative to CWD)")
        raw = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        if not isinstance(raw, dict) or raw.get("stage", name) != name:
            raise SltError(f"{file}: not a {name} config (section {name} of {source})")
        raw = {k: v for k, v in raw.items() if k not in (*LINKS, "stage")}
        label = f"{file} (section {name} of {source})"
        data = (raw.get("data") or {}) | shared_data  # the pipeline's data section wins
    else:
        for key in (*LINKS, "stage"):
            if key in section:
                raise SltError(
                    f"{source}: '{name}.{key}' is set by the pipeline (stages run in "
                    f"run_dir/{name}); remove it"
                )
        raw, label = dict(section), f"{source} (section {name})"
        data = shared_data | (section.get("data") or {})
    fields = schema.model_fields
    raw |= {k: None if v is None else str(v) for k, v in links.items() if k in fields}
    raw["data"] = data
    for item in overrides:  # `s2g.model.width=0.5` → `model.width=0.5` in this stage
        _apply_override(raw, item.split(".", 1)[1], source)
    return validate_config(raw, schema, label)


# --- hashes: what a stage ran on ------------------------------------------------------


def file_digest(*paths: Path) -> str:
    """One sha256 over the named files (name and content hash each; a missing file as absent)."""
    from slt_serve.fileio import files_sha256

    return files_sha256(*paths)


def combine(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def annotations_digest(root: Path) -> str:
    """The dataset's annotations and gloss vocabulary: what every stage reads."""
    names = ("train.jsonl", "dev.jsonl", "test.jsonl", "gloss_vocab.json")
    return file_digest(*(Path(root) / n for n in names))


def best_weights_digest(run_dir: Path) -> str:
    """sha256 of a run's best checkpoint weights ('' when it has none)."""
    from slt_training.runs import BEST, checkpoint_pointer, weights_sha256

    folder = checkpoint_pointer(run_dir, BEST)
    return "" if folder is None else weights_sha256(folder)


# --- the state file -------------------------------------------------------------------


@dataclass
class PipelineState:
    """`pipeline.json`: per stage, the inputs hash it finished with, when, and how long."""

    path: Path
    stages: dict[str, dict] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> PipelineState:
        path = run_dir / STATE_FILE
        if not path.is_file():
            return cls(path)
        try:
            return cls(path, json.loads(path.read_text(encoding="utf-8"))["stages"])
        except (ValueError, KeyError) as e:
            raise SltError(f"{path}: unreadable ({e}); delete it to re-check every stage") from None

    def finished(self, stage: str, inputs: str) -> bool:
        record = self.stages.get(stage)
        return record is not None and record.get("inputs") == inputs

    def record(self, stage: str, inputs: str, seconds: float, **extra: Any) -> None:
        self.stages[stage] = {
            "inputs": inputs,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "seconds": round(seconds, 1),
            **extra,
        }
        write_json(self.path, {"stages": self.stages})

    def forget(self, *stages: str) -> None:
        for stage in stages:
            self.stages.pop(stage, None)
        write_json(self.path, {"stages": self.stages})


# --- running ------------------------------------------------------------------------


@dataclass(frozen=True)
class StageReport:
    """One line of the pipeline's progress."""

    stage: str
    status: Literal["ran", "resumed", "skipped", "off"]
    seconds: float
    detail: str = ""


@dataclass
class Pipeline:
    """Runs a `Plan` stage by stage; `say` receives one line per event (the CLI prints it)."""

    plan: Plan
    say: Callable[[str], None] = log.info
    reports: list[StageReport] = field(default_factory=list)

    def run(self, until: str | None = None) -> dict:
        """Every stage in order (up to and including `until`); returns the results table."""
        if until is not None and until not in STAGES:
            raise SltError(f"--until {until}: choose one of {', '.join(STAGES)}")
        run_dir = self.plan.run_dir
        run_dir.mkdir(parents=True, exist_ok=True)
        _save_plan(self.plan)
        state = PipelineState.load(run_dir)
        results: dict = {}
        for stage in STAGES:
            step = getattr(self, f"_{stage}")
            results = step(state) or results
            if stage == until:
                break
        return results

    # each step: work out its inputs hash, skip / resume / run, record

    def _step(
        self,
        state: PipelineState,
        stage: str,
        inputs: str,
        folder: Path | None,
        work: Callable[[bool], str],
        cfg: Section | None = None,
    ) -> None:
        if state.finished(stage, inputs) and (folder is None or folder.exists()):
            self._report(stage, "skipped", 0.0, "finished earlier on the same inputs")
            return
        resume = False
        if folder is not None and folder.exists():
            if stage in state.stages or not _resumable(folder, stage, cfg):
                stale = _move_aside(folder)
                self.say(f"{stage}: inputs changed since it ran; old run kept as {stale.name}")
            else:
                resume = True
        self.say(f"{stage}: {'resuming' if resume else 'running'}")
        started = time.monotonic()
        detail = work(resume) or ""
        seconds = time.monotonic() - started
        state.record(stage, inputs, seconds)
        self._report(stage, "resumed" if resume else "ran", seconds, detail)

    def _report(self, stage: str, status: str, seconds: float, detail: str = "") -> None:
        self.reports.append(StageReport(stage, status, seconds, detail))
        self.say(
            f"{stage}: {status}"
            + (f" ({seconds:.0f} s)" if seconds else "")
            + (f" — {detail}" if detail else "")
        )

    def _prepare(self, state: PipelineState) -> None:
        from slt_training.data.annotations import load_split
        from slt_training.data.check import VOCAB_FILE
        from slt_training.data.frames import cache_frames
        from slt_training.data.vocab import build_vocab

        cfg, root = self.plan.config.prepare, Path(self.plan.s2g.data.root)
        started, done = time.monotonic(), []
        if not (root / "train.jsonl").is_file():
            raise SltError(
                f"{root}: no train.jsonl; import the corpus first "
                "(`slt data import-folder`, `slt data import-slrt`, or `slt data synth`)"
            )
        clips = load_split(root, "train")
        if any(not c.gloss.strip() for c in clips):
            raise SltError(
                f"{root}/train.jsonl: clips without glosses; derive them from the text first "
                f"(`slt data gloss-from-text {root} --lang {self.plan.s2t.data.lang}`)"
            )
        if cfg.vocab and not (root / VOCAB_FILE).is_file():
            build_vocab(clips).save(root / VOCAB_FILE)
            done.append(f"wrote {VOCAB_FILE}")
        if cfg.frames:
            size = self.plan.s2g.data.frame_size
            report = cache_frames(root, "all", size=size, workers=cfg.workers)
            done.append(f"frames/{size}: {report.cached} cached, {report.skipped} already there")
            if report.failed:
                done.append(f"{len(report.failed)} failed (see {report.cache_dir}/errors.jsonl)")
        self._report("prepare", "ran", time.monotonic() - started, "; ".join(done))

    def _s2g(self, state: PipelineState) -> None:
        from slt_training.stages import s2g

        cfg = self.plan.s2g
        inputs = combine(config_hash(cfg), annotations_digest(Path(cfg.data.root)))

        def work(resume: bool) -> str:
            result = s2g.train(cfg, resume=resume)
            return ", ".join(f"{k} WER {v['wer']:.2f}" for k, v in result.scores.items())

        self._step(state, "s2g", inputs, Path(cfg.run_dir), work, cfg)

    def _features(self, state: PipelineState) -> None:
        from slt_training.stages.features import FEATURES_DIR, extract

        cfg = self.plan.s2g
        run_dir = Path(cfg.run_dir)
        inputs = combine(
            best_weights_digest(run_dir),
            annotations_digest(Path(cfg.data.root)),
            self.plan.feature_splits,
        )

        def work(resume: bool) -> str:
            report = extract(cfg, self.plan.feature_splits)
            return ", ".join(f"{k}: {n} clips" for k, n in report.clips.items())

        # features are rewritten whole (no partial resume): not a folder that is moved aside
        if not state.finished("features", inputs):
            state.forget("features")
        self._step(state, "features", inputs, None, work)
        if not (run_dir / FEATURES_DIR).is_dir():
            raise SltError(f"{run_dir / FEATURES_DIR}: features stage wrote nothing")

    def _g2t(self, state: PipelineState) -> None:
        cfg = self.plan.g2t
        if cfg is None:
            self._report("g2t", "off", 0.0, "section g2t is null: S2T starts from a fresh mBART")
            return
        from slt_training.stages import g2t

        inputs = combine(config_hash(cfg), annotations_digest(Path(cfg.data.root)))

        def work(resume: bool) -> str:
            return _scores_line(g2t.train(cfg, resume=resume).scores)

        self._step(state, "g2t", inputs, Path(cfg.run_dir), work, cfg)

    def _s2t(self, state: PipelineState) -> None:
        from slt_training.stages import s2t

        cfg = self.plan.s2t
        inputs = combine(
            config_hash(cfg),
            annotations_digest(Path(self.plan.s2g.data.root)),
            best_weights_digest(Path(cfg.s2g_run)),
            "" if cfg.g2t_run is None else best_weights_digest(Path(cfg.g2t_run)),
        )

        def work(resume: bool) -> str:
            return _scores_line(s2t.train(cfg, resume=resume).scores)

        self._step(state, "s2t", inputs, Path(cfg.run_dir), work, cfg)

    def _export(self, state: PipelineState) -> None:
        cfg = self.plan.config.export
        if not cfg.enabled:
            self._report("export", "off", 0.0, "export.enabled is false")
            return
        from slt_export.bundle import export_run

        s2t_dir = Path(self.plan.s2t.run_dir)
        inputs = combine(
            best_weights_digest(s2t_dir),
            best_weights_digest(Path(self.plan.s2t.s2g_run)),
            str(cfg.quantize),
            "" if cfg.pose is None else file_digest(Path(cfg.pose)),
            self.plan.name,
        )
        out = self.plan.bundle_dir

        def work(resume: bool) -> str:
            if out.exists():
                shutil.rmtree(out)
            export_run(s2t_dir, out, quantize=cfg.quantize, pose=cfg.pose, name=self.plan.name)
            return f"wrote {out}"

        if not state.finished("export", inputs):
            state.forget("export")
        self._step(state, "export", inputs, None, work)

    def _evaluate(self, state: PipelineState) -> dict:
        started = time.monotonic()
        results = collect_results(self.plan)
        if self.plan.config.export.enabled and self.plan.config.evaluate.bundle:
            results["bundle"] = evaluate_bundle(self.plan)
        write_json(self.plan.run_dir / RESULTS_JSON, results)
        with atomic_write(self.plan.run_dir / RESULTS_MD) as f:
            f.write(results_markdown(results))
        self._report("evaluate", "ran", time.monotonic() - started, f"wrote {RESULTS_MD}")
        return results


def _resumable(folder: Path, stage: str, cfg: Section | None) -> bool:
    """An interrupted training stage: a checkpoint to resume, made with the same config."""
    from slt_training.config import CONFIG_COPY
    from slt_training.trainer import LATEST, checkpoint_pointer

    if cfg is None or checkpoint_pointer(folder, LATEST) is None:
        return False
    try:
        saved = yaml.safe_load((folder / CONFIG_COPY).read_text(encoding="utf-8"))
        return config_hash(type(cfg).model_validate(saved)) == config_hash(cfg)
    except (OSError, ValueError, yaml.YAMLError):
        return False


def _move_aside(folder: Path) -> Path:
    n = 1
    while folder.with_name(f"{folder.name}.stale-{n}").exists():
        n += 1
    target = folder.with_name(f"{folder.name}.stale-{n}")
    os.replace(folder, target)
    return target


def _scores_line(scores: dict[str, dict[str, float]]) -> str:
    return ", ".join(f"{split} BLEU-4 {s['bleu4']:.2f}" for split, s in scores.items())


def _save_plan(plan: Plan) -> None:
    """The resolved stage configs, for reading what exactly ran."""
    with atomic_write(plan.run_dir / "pipeline.yaml") as f:
        resolved = {
            "source": str(plan.source),
            "s2g": plan.s2g.model_dump(mode="json"),
            "g2t": None if plan.g2t is None else plan.g2t.model_dump(mode="json"),
            "s2t": plan.s2t.model_dump(mode="json"),
            "export": plan.config.export.model_dump(mode="json"),
        }
        yaml.safe_dump(resolved, f, sort_keys=False, allow_unicode=True)


# --- results ------------------------------------------------------------------------

TEXT_METRICS = ("bleu1", "bleu2", "bleu3", "bleu4", "rouge_l")
TABLE_HEADER = ("model", "split", "WER", "BLEU-1", "BLEU-2", "BLEU-3", "BLEU-4", "ROUGE-L")


def _read_metrics(run_dir: Path) -> dict:
    path = run_dir / "metrics.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def collect_results(plan: Plan) -> dict:
    """split → {wer (S2G), bleu1..4, rouge_l (S2T)}, and G2T's scores for comparison."""
    s2g = _read_metrics(Path(plan.s2g.run_dir)).get("scores", {})
    s2t = _read_metrics(Path(plan.s2t.run_dir)).get("scores", {})
    g2t = {} if plan.g2t is None else _read_metrics(Path(plan.g2t.run_dir)).get("scores", {})
    out: dict = {"s2t": {}, "g2t": {}}
    for split in sorted(set(s2g) | set(s2t)):
        row = {"wer": s2g.get(split, {}).get("wer")}
        row |= {m: s2t.get(split, {}).get(m) for m in TEXT_METRICS}
        out["s2t"][split] = row
    for split, scores in g2t.items():
        out["g2t"][split] = {m: scores.get(m) for m in TEXT_METRICS}
    return out


def evaluate_bundle(plan: Plan) -> dict:
    """Translate the dev/test videos with the exported bundle (torch-free runtime), score them."""
    from slt_serve.translator import Translator
    from slt_training.data.annotations import load_split, split_path
    from slt_training.metrics import evaluate_gloss, evaluate_text

    translator = Translator.from_bundle(plan.bundle_dir)
    root, lang = Path(plan.s2g.data.root), plan.s2t.data.lang
    limit = plan.config.evaluate.max_clips
    out: dict = {}
    for split in (plan.s2g.data.dev_split, plan.s2g.data.test_split):
        if not split or not split_path(root, split).is_file():
            continue
        clips = load_split(root, split)[:limit]
        results = [translator.translate(root / c.video) for c in clips]
        text = evaluate_text([r.text for r in results], [c.text for c in clips], lang)
        gloss = evaluate_gloss([r.gloss for r in results], [c.gloss for c in clips], False)
        seconds = sum(r.timings_ms.get("total", 0.0) for r in results) / 1000
        duration = sum(r.duration_s for r in results)
        out[split] = {"clips": len(clips), "wer": gloss.wer}
        out[split] |= {m: getattr(text, m) for m in TEXT_METRICS}
        out[split]["real_time_factor"] = seconds / duration if duration else None
        pytorch = _predictions(Path(plan.s2t.run_dir) / "predictions" / f"{split}.jsonl")
        same = [pytorch[c.name] == r.text for c, r in zip(clips, results) if c.name in pytorch]
        # the bundle against the PyTorch model on the same clips: the export's end-to-end check
        out[split]["same_text_as_pytorch"] = sum(same) / len(same) if same else None
    return out


def _predictions(path: Path) -> dict[str, str]:
    """name → hypothesis of a stage's predictions file ({} when there is none)."""
    if not path.is_file():
        return {}
    rows = (json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line)
    return {row["name"]: row["hyp"] for row in rows}


MODEL_NAMES = {"s2t": "S2T (PyTorch)", "bundle": "S2T bundle (ONNX)", "g2t": "G2T (gold glosses)"}


def result_rows(results: dict):
    """(model, split, WER, BLEU-1..4, ROUGE-L as text) rows of the final table."""
    for key, name in MODEL_NAMES.items():
        for split, row in results.get(key, {}).items():
            cells = [row.get("wer"), *(row.get(m) for m in TEXT_METRICS)]
            yield (name, split, *(_cell(v) for v in cells))


def bundle_lines(results: dict) -> list[str]:
    """One line a split: how the bundle compares with PyTorch, and its real-time factor."""
    lines = []
    for split, row in results.get("bundle", {}).items():
        same, rtf = row.get("same_text_as_pytorch"), row.get("real_time_factor")
        lines.append(
            f"bundle on {split}: {row['clips']} clips, same text as PyTorch on "
            f"{'–' if same is None else f'{100 * same:.0f} %'} of them, real-time factor "
            f"{'–' if rtf is None else f'{rtf:.2f}'}"
        )
    return lines


def results_markdown(results: dict) -> str:
    """The final table, as Markdown (results.md; the CLI prints the same rows)."""
    lines = ["| " + " | ".join(TABLE_HEADER) + " |", "|" + "---|" * len(TABLE_HEADER)]
    lines += ["| " + " | ".join(row) + " |" for row in result_rows(results)]
    lines += ["\n" + line for line in bundle_lines(results)]
    return "\n".join(lines) + "\n"


def _cell(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
