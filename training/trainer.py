"""The training loop every stage shares, on HF Accelerate (CPU, one GPU, DDP, multi-node).

`Trainer(...).fit(resume)` trains epoch by epoch; a stage supplies the model, the
training dataset and a `TrainingTask` (how a batch becomes a loss, how the model is
scored on dev). What it does, and why:

- Accelerate runs the same code on CPU, one GPU or many (`accelerate launch -m
  slt_training.stages.s2g CONFIG` or `slt train s2g` under `accelerate launch`),
  with fp16/bf16 autocast; gradient accumulation is explicit (`no_sync` on the
  micro-batches that do not step), so a checkpoint always falls on a step boundary.
- Every epoch: dev score, then a checkpoint (`accelerator.save_state`: safetensors
  weights, optimizer, RNG states, all loaded with `weights_only=True`; plus
  `scheduler.json` and `trainer_state.json`: epoch,
  step, batches done in the epoch, history, best score, config hash). The
  `keep_best_n` best epochs are kept, `checkpoints/best.json` and `latest.json`
  point at the best and the newest. Extra checkpoints every
  `checkpoint_every_minutes` (a notebook cut off after 9-12 h loses little), and
  one on Ctrl-C / SIGTERM.
- Resume is exact: the data order is a permutation seeded by (seed, epoch), each
  clip's augmentation is seeded by (seed, epoch, index), the DataLoader has its
  own generator, and a run stopped mid-epoch skips the batches it had done. So a
  killed run resumed from its last checkpoint reaches the same weights as a run
  that was never stopped (tested with SIGKILL).
- A checkpoint is written to a temporary folder and renamed, and the pointer files
  are written after it; a kill during a save leaves the previous checkpoint valid.
- Budgets: `epochs`, `max_steps`, and `max_minutes` on `clock` (wall, or this process's
  CPU time on a shared CPU), counted over every session of the run; `schedule: linear`
  decays the learning rate to zero where the first of them ends (`slt_training.schedules`).
- With `average_best` N > 1, the N best checkpoints' weights are averaged at the end
  (`slt_training.averaging`), scored on dev, and made the best checkpoint when they score
  at least as well as the best single one (`checkpoints/averaged`, weights only).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate import Accelerator
from accelerate.utils import broadcast_object_list, set_seed
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from slt_serve.errors import SltError
from slt_serve.fileio import write_json
from slt_training.averaging import AVERAGED, average_weights, write_weights_checkpoint
from slt_training.config import TrainingConfig
from slt_training.runs import (  # noqa: F401  (BEST, LATEST, checkpoint_pointer: re-exported)
    BEST,
    CHECKPOINTS,
    LATEST,
    WEIGHTS_FILE,
    checkpoint_dir,
    checkpoint_pointer,
    load_state,
    read_weights,
    write_checkpoint_pointer,
)
from slt_training.schedules import BudgetClock, budget_fraction, linear_to_zero

log = logging.getLogger(__name__)

STATE_FILE = "trainer_state.json"
# The LR schedule's position, as JSON: accelerate would pickle a registered object and
# load it back with weights_only=False, which we never do with a file from disk.
SCHEDULER_FILE = "scheduler.json"


class TrainingTask(Protocol):
    """What a stage tells the trainer."""

    metric: str  # dev score that selects the best checkpoint, e.g. "wer"
    higher_is_better: bool

    def loss(self, model: nn.Module, batch: Any) -> tuple[Tensor, dict[str, float]]:
        """The loss to minimise for one batch, and named parts to log."""

    def evaluate(self, model: nn.Module, beam_size: int) -> dict[str, float]:
        """Dev scores of `model` (unwrapped, in eval mode); must include `metric`."""

    def batch_size(self, batch: Any) -> int:
        """Clips in a batch (for clips/s)."""


@dataclass
class TrainState:
    """Where training stands; saved as JSON beside each checkpoint."""

    epoch: int = 0  # completed epochs
    batch_in_epoch: int = 0  # batches of epoch `epoch` already trained
    step: int = 0  # optimizer steps
    best_metric: float | None = None
    best_epoch: int | None = None
    best_tag: str | None = None  # checkpoint folder of the best dev score
    elapsed_s: float = 0.0  # training wall time over all sessions
    budget_s: float = 0.0  # seconds on the budget's clock (training.clock) over all sessions
    config_hash: str = ""
    history: list[dict] = field(default_factory=list)  # one entry per epoch: dev scores, time
    kept: dict[str, float] = field(default_factory=dict)  # scored checkpoint → dev metric
    averaged: dict = field(default_factory=dict)  # average_best: what was averaged, its score

    def to_json(self) -> dict:
        return dict(self.__dict__)

    @classmethod
    def from_json(cls, obj: dict) -> TrainState:
        return cls(**obj)


@dataclass(frozen=True)
class FitResult:
    """What `Trainer.fit` did."""

    state: TrainState
    best_checkpoint: Path | None  # folder of the best epoch checkpoint (None: no epoch ended)
    latest_checkpoint: Path | None
    stopped_early: bool  # max_minutes / max_steps reached before the last epoch


def load_weights(model: nn.Module, checkpoint: str | os.PathLike) -> None:
    """Load a checkpoint's safetensors weights into `model`, every key (no unpickling)."""
    model.load_state_dict(read_weights(checkpoint))


def make_optimizer(params, cfg: TrainingConfig) -> torch.optim.Optimizer:
    """Adam (weight decay as L2) or AdamW (decoupled weight decay). AdamW uses torch's fused
    kernel where every parameter allows it: an AdamW step of the 6.4 M-parameter G2T model
    takes 9.5 ms fused against 54 ms with `foreach` on this CPU (~8% of a training step).
    Adam keeps `foreach`: fused, the S2G learning tests (Adam, 4 epochs) ended worse in 3
    full runs of 3 (dev WER 65-68 against <= 60), for a reason not found."""
    params = list(params)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(
            params, cfg.lr, cfg.betas, weight_decay=cfg.weight_decay, fused=_fusable(params)
        )
    return torch.optim.Adam(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)


def _fusable(params: list) -> bool:
    """torch's fused Adam(W) takes floating-point tensors on the CPU or a CUDA device."""
    tensors = [
        p for group in params for p in (group["params"] if isinstance(group, dict) else [group])
    ]
    return bool(tensors) and all(
        t.is_floating_point() and t.device.type in ("cpu", "cuda") for t in tensors
    )


def make_scheduler(
    optimizer: torch.optim.Optimizer,
    cfg: TrainingConfig,
    total_steps: int,
    fraction: Callable[[], float] | None = None,
):
    """Linear warm-up, then cosine to 0 over `total_steps`, constant, or (`linear`) linear
    to 0 as `fraction()` (how much of the budget is spent) reaches 1."""
    from transformers import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup

    if cfg.schedule == "constant":
        return get_constant_schedule_with_warmup(optimizer, cfg.warmup_steps)
    if cfg.schedule == "linear":
        if fraction is None:
            raise ValueError("schedule linear needs the budget fraction")
        return linear_to_zero(optimizer, cfg.warmup_steps, fraction)
    return get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, max(1, total_steps))


class Trainer:
    """Trains `model` on `train_set` with `task`; see the module docstring."""

    def __init__(
        self,
        cfg: TrainingConfig,
        run_dir: str | os.PathLike,
        model: nn.Module,
        train_set: Dataset,
        task: TrainingTask,
        *,
        collate_fn: Callable,
        sampler: Any,
        config_hash: str = "",
        param_groups: list[dict] | None = None,
    ) -> None:
        self.cfg, self.run_dir, self.task = cfg, Path(run_dir), task
        self.config_hash = config_hash
        self.accelerator = Accelerator(
            mixed_precision=cfg.mixed_precision,
            log_with="tensorboard",
            project_dir=str(self.run_dir),
            step_scheduler_with_optimizer=False,
        )
        set_seed(cfg.seed)
        if cfg.cpu_threads is not None:  # a shared CPU: more threads than cores spin and stall
            torch.set_num_threads(cfg.cpu_threads)
        loader = DataLoader(
            train_set,
            batch_size=cfg.batch_size,
            sampler=sampler,
            collate_fn=collate_fn,
            num_workers=cfg.num_workers,
            generator=torch.Generator().manual_seed(cfg.seed),  # keeps the global RNG untouched
            persistent_workers=cfg.num_workers > 0,
        )
        # param_groups: torch's per-group dicts ({"params": [...], "lr": ...}), e.g. a smaller
        # learning rate for a pretrained part; default: every trainable parameter at cfg.lr
        params = param_groups or [p for p in model.parameters() if p.requires_grad]
        optimizer = make_optimizer(params, cfg)
        self.steps_per_epoch = math.ceil(len(loader) / cfg.grad_accumulation)
        self.total_steps = self.steps_per_epoch * cfg.epochs
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.clock, self.fraction = BudgetClock(cfg.clock), 0.0
        self.scheduler = make_scheduler(
            optimizer, cfg, self.steps_per_epoch * cfg.epochs, lambda: self.fraction
        )
        self.model, self.optimizer, self.loader = self.accelerator.prepare(model, optimizer, loader)
        self.state = TrainState(config_hash=config_hash)
        self._last_save = time.monotonic()

    # --- the loop ----------------------------------------------------------------------

    def fit(self, resume: bool = False) -> FitResult:
        """Train to the last epoch (or the time/step budget); returns where it ended."""
        if resume:
            self._resume()
        self._clean_partial_saves()
        self.accelerator.init_trackers("tensorboard")
        stopped = False
        previous = signal.getsignal(signal.SIGTERM)
        with contextlib.suppress(ValueError):  # not the main thread: no handler
            signal.signal(signal.SIGTERM, _raise_interrupt)
        try:
            while self.state.epoch < self.cfg.epochs and not stopped:
                stopped = self._train_epoch()
                if self.state.batch_in_epoch == 0:  # the epoch finished
                    self._validate_and_save()
        except KeyboardInterrupt:
            log.warning("interrupted: saving a checkpoint to resume from")
            self._save(f"step-{self.state.step:08d}")
            raise
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)
            self.accelerator.end_training()
        if stopped and self.state.batch_in_epoch:  # the budget ended mid-epoch: score it too
            self._validate_and_save(f"step-{self.state.step:08d}")
        if self.cfg.average_best > 1:
            self._average_best()
        best = checkpoint_pointer(self.run_dir, BEST)
        return FitResult(self.state, best, checkpoint_pointer(self.run_dir, LATEST), stopped)

    def _train_epoch(self) -> bool:
        """One epoch from `state.batch_in_epoch`; True when the time/step budget ran out."""
        cfg, acc, state = self.cfg, self.accelerator, self.state
        loader = self.loader
        if state.batch_in_epoch:
            loader = acc.skip_first_batches(self.loader, state.batch_in_epoch)
        loader.set_epoch(state.epoch)  # the sampler's permutation of this epoch
        self.model.train()
        total = len(self.loader)
        bar = tqdm(
            total=total,
            initial=state.batch_in_epoch,
            desc=f"epoch {state.epoch + 1}/{cfg.epochs}",
            unit="batch",
            disable=None if acc.is_local_main_process else True,
        )
        tick, clips = time.monotonic(), 0
        try:
            for i, batch in enumerate(loader, start=state.batch_in_epoch):
                sync = (i + 1) % cfg.grad_accumulation == 0 or i + 1 == total
                loss, parts = self._micro_step(batch, sync)
                clips += self.task.batch_size(batch) * acc.num_processes
                bar.update()
                if not sync:
                    continue
                state.step += 1
                state.batch_in_epoch = (i + 1) % total
                if (i + 1) == total:
                    state.epoch += 1
                rate = clips / max(time.monotonic() - tick, 1e-9)
                bar.set_postfix(loss=f"{loss:.3f}", clips_s=f"{rate:.2f}")
                self._log_step(loss, parts, rate)
                spent = self._budget_spent()
                self.scheduler.step()  # after the budget fraction of this step is known
                if spent:
                    return True
                every = cfg.dev_every_steps
                if every and state.step % every == 0 and state.batch_in_epoch:
                    self._validate_and_save(f"step-{state.step:08d}")
                else:
                    self._maybe_timed_save()
        finally:
            bar.close()
        return False

    def _micro_step(self, batch: Any, sync: bool) -> tuple[float, dict[str, float]]:
        acc = self.accelerator
        context = contextlib.nullcontext() if sync else acc.no_sync(self.model)
        with context, acc.autocast():
            loss, parts = self.task.loss(self.model, batch)
            acc.backward(loss / self.cfg.grad_accumulation)
        if sync:
            if self.cfg.max_grad_norm is not None:
                acc.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        return float(loss.detach()), parts

    def _log_step(self, loss: float, parts: dict[str, float], rate: float) -> None:
        scalars = {"train/loss": loss, "train/lr": self.scheduler.get_last_lr()[0]}
        scalars["train/clips_per_s"] = rate
        scalars.update({f"train/{k}": v for k, v in parts.items()})
        self.accelerator.log(scalars, step=self.state.step)

    def _budget_spent(self) -> bool:
        """Whether max_steps / max_minutes is reached; updates the budget fraction the
        `linear` schedule reads (the main process's, so every process has the same rate)."""
        cfg, minutes = self.cfg, self.clock.minutes()
        spent = (cfg.max_steps is not None and self.state.step >= cfg.max_steps) or (
            cfg.max_minutes is not None and minutes >= cfg.max_minutes
        )
        fraction = budget_fraction(self.state.step, self.total_steps, minutes * 60, cfg.max_minutes)
        # every process stops at the same step, with the same learning rate
        spent, self.fraction = broadcast_object_list([spent, fraction])
        if spent:
            log.info(
                "budget reached at step %d (%.1f min, %s clock)",
                self.state.step,
                minutes,
                cfg.clock,
            )
        return spent

    def _maybe_timed_save(self) -> None:
        every = self.cfg.checkpoint_every_minutes
        due = every > 0 and time.monotonic() - self._last_save >= every * 60
        if broadcast_object_list([due])[0] and self.state.batch_in_epoch:
            self._save(f"step-{self.state.step:08d}")

    # --- validation and checkpoints ----------------------------------------------------

    def _validate_and_save(self, tag: str | None = None) -> None:
        """Dev scores of the epoch just finished (or of where the budget stopped), then its
        checkpoint; the `keep_best_n` best are kept."""
        scores = self.evaluate(self.cfg.dev_beam_size)
        state, metric = self.state, scores[self.task.metric]
        elapsed = state.elapsed_s + time.monotonic() - self._last_save
        state.history.append(
            {"epoch": state.epoch, "step": state.step, "elapsed_s": round(elapsed, 1), **scores}
        )
        self.accelerator.log({f"dev/{k}": v for k, v in scores.items()}, step=state.step)
        log.info("epoch %d: dev %s", state.epoch, _fmt(scores))
        better = state.best_metric is None or (
            metric > state.best_metric if self.task.higher_is_better else metric < state.best_metric
        )
        tag = tag or f"epoch-{state.epoch:04d}"
        if better:
            state.best_metric, state.best_epoch, state.best_tag = metric, state.epoch, tag
        state.kept[tag] = metric
        self._save(tag, best=better)

    def _average_best(self) -> None:
        """Average the `average_best` best checkpoints' weights, score them on dev, and make
        them the best checkpoint when they score at least as well as the best single one."""
        acc, state = self.accelerator, self.state
        higher = self.task.higher_is_better
        ranked = sorted(state.kept, key=state.kept.get, reverse=higher)[: self.cfg.average_best]
        if len(ranked) < 2 or state.best_tag is None:
            return
        averaged = average_weights([checkpoint_dir(self.run_dir, t) for t in ranked])
        model = acc.unwrap_model(self.model)
        load_state(model, averaged, self.run_dir / CHECKPOINTS / AVERAGED)
        scores = self.evaluate(self.cfg.dev_beam_size)
        metric, best = scores[self.task.metric], state.best_metric
        wins = metric >= best if higher else metric <= best
        state.averaged = {"checkpoints": ranked, "chosen": wins, **scores}
        log.info(
            "average of %s: dev %s → %s", ", ".join(ranked), _fmt(scores),
            "the best checkpoint" if wins else f"kept {state.best_tag} ({best:.2f})",
        )  # fmt: skip
        best_folder = checkpoint_dir(self.run_dir, state.best_tag)
        if acc.is_main_process:
            write_weights_checkpoint(self.run_dir, AVERAGED, averaged)
            if wins:
                info = {"epoch": state.epoch, "step": state.step, "metric": metric}
                write_checkpoint_pointer(self.run_dir, BEST, AVERAGED, **info, averaged=ranked)
            elif checkpoint_pointer(self.run_dir, BEST) != best_folder:  # an earlier average
                info = {"epoch": state.best_epoch, "metric": best}
                write_checkpoint_pointer(self.run_dir, BEST, state.best_tag, **info)
        acc.wait_for_everyone()
        if not wins:
            load_state(model, read_weights(best_folder), best_folder)

    def evaluate(self, beam_size: int) -> dict[str, float]:
        """Dev scores, computed on the main process and shared with the others."""
        acc = self.accelerator
        scores = None
        if acc.is_main_process:
            model = acc.unwrap_model(self.model)
            model.eval()
            with torch.no_grad(), acc.autocast():
                scores = self.task.evaluate(model, beam_size)
            model.train()
        scores = broadcast_object_list([scores])[0]
        acc.wait_for_everyone()
        return scores

    def _save(self, tag: str, best: bool = False) -> Path:
        """Full state into checkpoints/<tag> (temp folder, then rename), then the pointers."""
        acc, folder = self.accelerator, self.run_dir / CHECKPOINTS / tag
        tmp = folder.with_name(f".{tag}.partial")
        if acc.is_main_process and tmp.exists():
            shutil.rmtree(tmp)
        acc.wait_for_everyone()
        acc.save_state(str(tmp), safe_serialization=True)
        if acc.is_main_process:
            now = time.monotonic()
            self.state.elapsed_s += now - self._last_save
            self.state.budget_s = self.clock.seconds()
            self._last_save = now
            write_json(tmp / STATE_FILE, self.state.to_json())
            write_json(tmp / SCHEDULER_FILE, self.scheduler.state_dict())
            if folder.exists():
                shutil.rmtree(folder)
            os.replace(tmp, folder)
            info = {"epoch": self.state.epoch, "step": self.state.step}
            write_checkpoint_pointer(self.run_dir, LATEST, tag, **info)
            if best:
                info["metric"] = self.state.best_metric
                write_checkpoint_pointer(self.run_dir, BEST, tag, **info)
            self._prune(tag)
            log.info("saved %s", folder)
        self._last_save = time.monotonic()
        acc.wait_for_everyone()
        return folder

    def _prune(self, newest: str) -> None:
        """Keep the `keep_best_n` best epoch checkpoints, the best and the newest; drop the rest."""
        state = self.state
        ranked = sorted(state.kept, key=state.kept.get, reverse=self.task.higher_is_better)
        keep = set(ranked[: self.cfg.keep_best_n]) | {newest}
        if state.best_tag is not None:
            keep.add(state.best_tag)
        state.kept = {k: v for k, v in state.kept.items() if k in keep}
        for folder in (self.run_dir / CHECKPOINTS).iterdir():
            if folder.is_dir() and not folder.name.startswith(".") and folder.name not in keep:
                shutil.rmtree(folder, ignore_errors=True)

    def _clean_partial_saves(self) -> None:
        if self.accelerator.is_main_process and (self.run_dir / CHECKPOINTS).is_dir():
            for tmp in (self.run_dir / CHECKPOINTS).glob(".*.partial"):
                shutil.rmtree(tmp, ignore_errors=True)

    def _resume(self) -> None:
        """Load the latest checkpoint's full state; refuse one made with another config."""
        import json

        folder = checkpoint_pointer(self.run_dir, LATEST)
        if folder is None:
            raise SltError(f"{self.run_dir}: no checkpoint to resume from; start without --resume")
        state = TrainState.from_json(json.loads((folder / STATE_FILE).read_text("utf-8")))
        if self.config_hash and state.config_hash != self.config_hash:
            raise SltError(
                f"{folder}: checkpoint was made with another config (see {self.run_dir}/config.yaml); "
                "resume with the same config and overrides, or use a new run_dir"
            )
        self.accelerator.load_state(str(folder))
        self.scheduler.load_state_dict(
            json.loads((folder / SCHEDULER_FILE).read_text(encoding="utf-8"))
        )
        self.state = state
        self.clock.resume_from(state.budget_s)
        self.fraction = budget_fraction(
            state.step, self.total_steps, state.budget_s, self.cfg.max_minutes
        )
        log.info("resumed from %s: epoch %d, step %d", folder, state.epoch, state.step)


def _raise_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _fmt(scores: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.2f}" for k, v in scores.items())
