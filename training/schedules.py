"""Budgets and the learning-rate schedule that ends with them.

A run's budget is `training.epochs` (or `max_steps`) and optionally `max_minutes` on a
clock: wall time, or this process's CPU time (`training.clock: cpu`; with one thread
that is the core-minutes the run got, whatever the neighbours on a shared CPU took).
`BudgetClock` counts the minutes over every session of a run (a resumed run goes on
from what the earlier sessions spent), `budget_fraction` says how far through the
budget a run is (the larger of the step and the time fractions), and
`linear_to_zero` is the schedule of `training.schedule: linear`: linear warm-up, then
linear decay to zero at the end of the budget, whichever of steps and minutes ends it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

CLOCKS = ("wall", "cpu")


class BudgetClock:
    """Seconds a run has spent on its budget's clock, earlier sessions included."""

    def __init__(self, kind: str = "wall", spent_s: float = 0.0) -> None:
        if kind not in CLOCKS:
            raise ValueError(f"clock {kind!r}: choose one of {', '.join(CLOCKS)}")
        self.kind = kind
        self._read = time.process_time if kind == "cpu" else time.monotonic
        self.resume_from(spent_s)

    def resume_from(self, spent_s: float) -> None:
        """Continue counting from `spent_s` seconds (what the earlier sessions spent)."""
        self._before, self._start = spent_s, self._read()

    def seconds(self) -> float:
        return self._before + self._read() - self._start

    def minutes(self) -> float:
        return self.seconds() / 60


def budget_fraction(
    step: int, total_steps: int | None, seconds: float, max_minutes: float | None
) -> float:
    """How far through its budget a run is, in [0, 1]: the larger of steps done over
    `total_steps` and time spent over `max_minutes` (either may be None: no such budget)."""
    parts = [0.0]
    if total_steps:
        parts.append(step / total_steps)
    if max_minutes:
        parts.append(seconds / (max_minutes * 60))
    return min(1.0, max(parts))


def linear_to_zero(
    optimizer: Optimizer, warmup_steps: int, fraction: Callable[[], float]
) -> LambdaLR:
    """Linear warm-up over `warmup_steps`, then the peak rate times (1 − `fraction()`):
    zero when the budget (steps or time) is spent. `fraction` is read at every step."""

    def factor(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, warmup_steps))
        return warm * max(0.0, 1.0 - fraction())

    return LambdaLR(optimizer, factor)
