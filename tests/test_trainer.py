"""The shared trainer: exact resume (also after SIGKILL), checkpoints kept and pointed at.

A tiny regression model with dropout and per-item seeded noise stands in for a
recognizer, so that data order, augmentation and RNG state all matter to the weights.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from slt_serve.errors import SltError

TOY = '''
import sys, time
import numpy as np
import torch
from torch import nn
from torch.utils.data import Dataset, default_collate
from safetensors.torch import save_file

from slt_training.config import TrainingConfig
from slt_training.data.s2g_data import EpochSampler
from slt_training.trainer import Trainer


TRAINERS = []  # every Trainer `run` made, for tests that look inside


class Toy(Dataset):
    """y = w·x; items fetched by (epoch, index) get noise seeded by both."""

    def __init__(self, n=24):
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n, 4, generator=g)
        self.y = self.x @ torch.tensor([1.0, -2.0, 0.5, 3.0])

    def __len__(self):
        return len(self.x)

    def __getitem__(self, key):
        epoch, i = key
        noise = np.random.default_rng([0, epoch, i]).normal(size=4).astype("float32")
        return self.x[i] + 0.1 * torch.from_numpy(noise), self.y[i]


class Task:
    metric, higher_is_better = "mse", False

    def __init__(self, data, slow):
        self.data, self.slow = data, slow

    def loss(self, model, batch):
        if self.slow:
            time.sleep(0.15)
        x, y = batch
        return ((model(x).squeeze(-1) - y) ** 2).mean(), {}

    def evaluate(self, model, beam_size):
        return {"mse": float(((model(self.data.x).squeeze(-1) - self.data.y) ** 2).mean())}

    def batch_size(self, batch):
        return len(batch[0])


def run(run_dir, resume=False, slow=False, **overrides):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 1))
    cfg = TrainingConfig(**({"epochs": 3, "batch_size": 4, "lr": 0.01, "warmup_steps": 2,
                             "keep_best_n": 1, "cpu_threads": 1} | overrides))
    data = Toy()
    trainer = Trainer(cfg, run_dir, model, data, Task(data, slow), collate_fn=default_collate,
                      sampler=EpochSampler(len(data), cfg.seed), config_hash="toy")
    TRAINERS.append(trainer)
    result = trainer.fit(resume)
    save_file(trainer.accelerator.unwrap_model(trainer.model).state_dict(),
              f"{run_dir}/final.safetensors")
    return result


if __name__ == "__main__":
    run(sys.argv[1], resume="--resume" in sys.argv, slow="--slow" in sys.argv,
        checkpoint_every_minutes=1e-6 if "--slow" in sys.argv else 0)
'''


@pytest.fixture()
def toy(tmp_path, monkeypatch):
    """The toy training module, importable here and runnable as a script."""
    script = tmp_path / "toy_training.py"
    script.write_text(TOY, encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    import toy_training

    return importlib.reload(toy_training), script


def weights(run_dir: Path) -> dict:
    return load_file(str(run_dir / "final.safetensors"))


def same(a: dict, b: dict) -> bool:
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_stopped_mid_epoch_and_resumed_equals_straight(toy, tmp_path):
    module, _ = toy
    module.run(tmp_path / "straight", grad_accumulation=2)
    stopped = module.run(tmp_path / "resumed", grad_accumulation=2, max_steps=4)
    assert stopped.stopped_early and stopped.state.step == 4 and stopped.state.batch_in_epoch == 2
    resumed = module.run(tmp_path / "resumed", resume=True, grad_accumulation=2)
    assert resumed.state.step == 9 and resumed.state.epoch == 3
    assert same(weights(tmp_path / "straight"), weights(tmp_path / "resumed"))


def test_checkpoints_best_latest_and_pruning(toy, tmp_path):
    module, _ = toy
    result = module.run(tmp_path / "run", keep_best_n=1)
    folders = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir() if p.is_dir())
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest["dir"] == "epoch-0003" and best["dir"] in folders
    assert set(folders) == {best["dir"], "epoch-0003"}
    assert [h["epoch"] for h in result.state.history] == [1, 2, 3]
    assert best["metric"] == min(h["mse"] for h in result.state.history)
    state = json.loads((result.latest_checkpoint / "trainer_state.json").read_text())
    assert state["step"] == 18 and state["config_hash"] == "toy"
    assert (result.latest_checkpoint / "model.safetensors").is_file()
    assert list((tmp_path / "run").glob("**/events.out.tfevents*"))  # TensorBoard scalars


def test_resume_refusals(toy, tmp_path):
    module, _ = toy
    with pytest.raises(SltError, match="no checkpoint to resume"):
        module.run(tmp_path / "none", resume=True)
    module.run(tmp_path / "run", max_steps=2)
    import toy_training

    from slt_training.trainer import TrainState

    state_file = next((tmp_path / "run" / "checkpoints").glob("step-*")) / "trainer_state.json"
    state = TrainState.from_json(json.loads(state_file.read_text()))
    state.config_hash = "other"
    state_file.write_text(json.dumps(state.to_json()))
    with pytest.raises(SltError, match="another config"):
        toy_training.run(tmp_path / "run", resume=True)


@pytest.mark.slow
def test_sigkill_then_resume_equals_straight(toy, tmp_path):
    """A real process killed with SIGKILL mid-epoch resumes to the same weights."""
    _, script = toy
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    run = lambda *args: subprocess.run(  # noqa: E731
        [sys.executable, str(script), *map(str, args)], env=env, check=True, timeout=300
    )
    run(tmp_path / "straight", "--slow")
    killed = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, str(script), str(killed), "--slow"], env=env)
    latest = killed / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if latest.is_file() and 8 <= json.loads(latest.read_text())["step"] < 18:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    step = json.loads(latest.read_text())["step"]
    assert 8 <= step < 18 and not (killed / "final.safetensors").exists()
    run(killed, "--slow", "--resume")
    assert same(weights(tmp_path / "straight"), weights(killed))


def test_resume_unpickles_nothing(toy, tmp_path, monkeypatch):
    """Every file a resume reads is safetensors, JSON or `torch.load(weights_only=True)`."""
    import torch

    module, _ = toy
    module.run(tmp_path / "run", max_steps=2)
    latest = tmp_path / "run" / "checkpoints"
    assert not list(latest.rglob("*.pkl")) or all(
        p.name.startswith("random_states") for p in latest.rglob("*.pkl")
    )
    calls = []
    real_load = torch.load

    def recording_load(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", recording_load)
    resumed = module.run(tmp_path / "run", resume=True)
    assert resumed.state.step > 2
    assert calls and all(w is True for w in calls), calls


def test_linear_schedule_ends_at_zero_with_the_step_budget_and_adamw(toy, tmp_path):
    import torch

    module, _ = toy
    result = module.run(
        tmp_path / "run", schedule="linear", optimizer="adamw", weight_decay=0.01, max_steps=10
    )
    trainer = module.TRAINERS[-1]
    assert result.stopped_early and result.state.step == 10
    assert isinstance(trainer.optimizer.optimizer, torch.optim.AdamW)
    assert trainer.scheduler.get_last_lr()[0] == 0.0  # 10 of min(18, 10) steps: the end
    state = json.loads((result.latest_checkpoint / "trainer_state.json").read_text())
    assert state["budget_s"] > 0  # the budget clock's seconds, for a resumed run to go on from


def test_budget_clock_fraction_and_linear_factor():
    import torch

    from slt_training.schedules import BudgetClock, budget_fraction, linear_to_zero

    cpu = BudgetClock("cpu", spent_s=30.0)
    sum(i * i for i in range(200_000))  # some CPU time
    assert cpu.seconds() > 30.0 and cpu.kind == "cpu"
    cpu.resume_from(90.0)
    assert 90.0 <= cpu.seconds() < 91.0 and abs(cpu.minutes() - 1.5) < 0.02
    assert budget_fraction(5, 10, 0.0, None) == 0.5
    assert budget_fraction(5, 10, 45.0, 1.0) == 0.75  # time is further along than steps
    assert budget_fraction(50, None, 0.0, None) == 0.0 and budget_fraction(20, 10, 0, None) == 1
    with pytest.raises(ValueError, match="clock"):
        BudgetClock("gpu")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    progress = [0.0]
    sched = linear_to_zero(opt, warmup_steps=4, fraction=lambda: progress[0])
    assert sched.get_last_lr()[0] == 0.25  # warm-up: step 1 of 4
    for _ in range(3):
        opt.step()
        sched.step()
    assert sched.get_last_lr()[0] == 1.0
    progress[0] = 0.75
    opt.step()
    sched.step()
    assert sched.get_last_lr()[0] == 0.25


def test_average_best_checkpoints(toy, tmp_path):
    import torch

    from slt_training.averaging import average_weights
    from slt_training.runs import read_weights

    module, _ = toy
    result = module.run(tmp_path / "run", epochs=4, keep_best_n=3, average_best=3)
    averaged = result.state.averaged
    folders = [tmp_path / "run" / "checkpoints" / tag for tag in averaged["checkpoints"]]
    kept = sorted(result.state.kept, key=result.state.kept.get)[:3]  # mse: lower is better
    assert averaged["checkpoints"] == kept and all(f.is_dir() for f in folders)
    mean = average_weights(folders)
    states = [read_weights(f) for f in folders]
    for k, v in mean.items():
        assert torch.allclose(v, sum(s[k] for s in states) / 3)
    on_disk = read_weights(tmp_path / "run" / "checkpoints" / "averaged")
    assert on_disk.keys() == mean.keys() and all(torch.equal(on_disk[k], mean[k]) for k in mean)
    best = json.loads((tmp_path / "run" / "checkpoints" / "best.json").read_text())
    wins = averaged["mse"] <= min(result.state.kept.values())
    assert averaged["chosen"] == wins
    assert best["dir"] == ("averaged" if wins else result.state.best_tag)
    latest = json.loads((tmp_path / "run" / "checkpoints" / "latest.json").read_text())
    assert latest["dir"] == "epoch-0004"  # resume reads full state, never the average


def test_average_best_needs_the_checkpoints_kept():
    from pydantic import ValidationError

    from slt_training.config import TrainingConfig

    with pytest.raises(ValidationError, match="keep_best_n"):
        TrainingConfig(keep_best_n=2, average_best=3)
