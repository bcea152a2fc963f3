"""The stages in order: prepare → S2G → features → G2T → S2T → export → evaluate.

`Pipeline(plan).run(until)` works out each stage's inputs hash, asks `state.next_action`
whether to skip, resume or run it (moving a stale folder aside), runs it through the
stage's own Python entry point, and records it in `pipeline.json`.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from slt_serve.errors import SltError
from slt_training.config import Section, config_hash
from slt_training.runs import FEATURES_DIR

from .plan import Plan, save_plan
from .results import collect_results, evaluate_bundle, write_results
from .state import (
    PipelineState,
    annotations_digest,
    best_weights_digest,
    combine,
    move_aside,
    next_action,
)

log = logging.getLogger(__name__)

STAGES = ("prepare", "s2g", "features", "g2t", "s2t", "export", "evaluate")


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
        save_plan(self.plan)
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
        action = next_action(state, stage, inputs, folder, cfg)
        if action == "skip":
            self._report(stage, "skipped", 0.0, "finished earlier on the same inputs")
            return
        if action == "stale":
            stale = move_aside(folder)
            self.say(f"{stage}: inputs changed since it ran; old run kept as {stale.name}")
        resume = action == "resume"
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
        from slt_training.stages.features import extract

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
            return scores_line(g2t.train(cfg, resume=resume).scores)

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
            return scores_line(s2t.train(cfg, resume=resume).scores)

        self._step(state, "s2t", inputs, Path(cfg.run_dir), work, cfg)

    def _export(self, state: PipelineState) -> None:
        cfg = self.plan.config.export
        if not cfg.enabled:
            self._report("export", "off", 0.0, "export.enabled is false")
            return
        from slt_export.bundle import ExportOptions, export_run
        from slt_serve.fileio import files_sha256

        s2t_dir = Path(self.plan.s2t.run_dir)
        inputs = combine(
            best_weights_digest(s2t_dir),
            best_weights_digest(Path(self.plan.s2t.s2g_run)),
            str(cfg.quantize),
            "" if cfg.pose is None else files_sha256(Path(cfg.pose)),
            self.plan.name,
        )
        out = self.plan.bundle_dir

        def work(resume: bool) -> str:
            if out.exists():
                shutil.rmtree(out)
            options = ExportOptions(name=self.plan.name, pose=cfg.pose, quantize=cfg.quantize)
            export_run(s2t_dir, out, options)
            return f"wrote {out}"

        if not state.finished("export", inputs):
            state.forget("export")
        self._step(state, "export", inputs, None, work)

    def _evaluate(self, state: PipelineState) -> dict:
        started = time.monotonic()
        results = collect_results(self.plan)
        if self.plan.config.export.enabled and self.plan.config.evaluate.bundle:
            results["bundle"] = evaluate_bundle(self.plan)
        written = write_results(self.plan.run_dir, results)
        self._report("evaluate", "ran", time.monotonic() - started, f"wrote {written.name}")
        return results


def scores_line(scores: dict[str, dict[str, float]]) -> str:
    """A translation stage's final scores as one progress line."""
    return ", ".join(f"{split} BLEU-4 {s['bleu4']:.2f}" for split, s in scores.items())
