"""Per-step dispatch cost of `CallbackManager.execute_step_callbacks`.

Measures our manager with 1, 10 and 100 registered periodic callbacks of which none is due, and
with exactly one due, beside Stable-Baselines3's `CallbackList` dispatching the same number of
no-op callbacks, in the same run. Figures are medians over repeats, in nanoseconds per dispatch.

Targets: ours costs no more than SB3's at 10 callbacks; ours does not grow with the number of
callbacks that are not due.

Run: `make bench` or `.venv/bin/python benchmarks/bench_callbacks.py` (needs the `bench` extra).
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import torch

from keisei.config import load_config
from keisei.log import get_logger
from keisei.training.callback_manager import CallbackManager
from keisei.training.callbacks import Callback, TrainerView
from keisei.training.schedule import EveryNSteps

STEPS_PER_EPOCH = 128
CALLS = 20_000
REPEATS = 7


class Periodic(Callback):
    """A periodic callback whose work is nothing: what dispatch alone costs."""

    def __init__(self, interval: int) -> None:
        super().__init__()
        self.schedule = EveryNSteps(interval)
        self.calls = 0

    def on_step_end(self, trainer: TrainerView) -> None:
        self.calls += 1


@dataclass
class View:
    """The smallest real `TrainerView`."""

    global_timestep: int = 0
    total_episodes_completed: int = 0
    black_wins: int = 0
    white_wins: int = 0
    draws: int = 0
    model: torch.nn.Module = field(default_factory=lambda: torch.nn.Linear(1, 1))
    checkpoint_saver: None = None
    evaluator: None = None
    logger: logging.Logger = field(default_factory=get_logger)
    run_dir: Path = Path("unused")

    def record_metrics(self, metrics: dict[str, float]) -> None:
        pass


def ours(total: int, due: int) -> float:
    config = load_config(
        overrides=[
            "env.num_envs=1",
            "ppo.minibatch_size=1",
            f"training.steps_per_epoch={STEPS_PER_EPOCH}",
        ]
    )
    manager = CallbackManager(config, "unused")
    for i in range(total):
        interval = STEPS_PER_EPOCH if i < due else 10**12
        manager.add_callback(Periodic(interval))
    view = View()
    manager.on_train_start(view)
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            view.global_timestep += STEPS_PER_EPOCH
            manager.execute_step_callbacks(view)
        samples.append((time.perf_counter_ns() - start) / CALLS)
    manager.close()
    return statistics.median(samples)


def stable_baselines3(total: int) -> float:
    from stable_baselines3.common.callbacks import BaseCallback, CallbackList

    class NoOp(BaseCallback):
        def _on_step(self) -> bool:
            return True

    model = SimpleNamespace(num_timesteps=0)
    callbacks = [NoOp() for _ in range(total)]
    for callback in callbacks:
        callback.model = model
    callback_list = CallbackList(callbacks)
    callback_list.model = model
    samples = []
    for _ in range(REPEATS):
        start = time.perf_counter_ns()
        for _ in range(CALLS):
            model.num_timesteps += STEPS_PER_EPOCH
            callback_list.on_step()
        samples.append((time.perf_counter_ns() - start) / CALLS)
    return statistics.median(samples)


def main() -> None:
    logging.getLogger("keisei").setLevel(logging.WARNING)
    print(f"dispatch cost, ns per call (median of {REPEATS} x {CALLS:,} calls)")
    print(
        f"{'callbacks':>9} {'SB3 no-op':>10} {'ours, none due':>15} {'ours, one due':>14} "
        f"{'ours/SB3':>9}"
    )
    results = {}
    for total in (1, 10, 100):
        sb3 = stable_baselines3(total)
        none_due = ours(total, due=0)
        one_due = ours(total, due=1)
        results[total] = (sb3, none_due, one_due)
        print(f"{total:>9} {sb3:>10.0f} {none_due:>15.0f} {one_due:>14.0f} {none_due / sb3:>9.2f}")
    growth = results[100][1] / results[1][1]
    print(f"\nours, none due, 100 vs 1 callbacks: x{growth:.2f} (flat means it does not grow)")
    print(f"ours, one due, 100 vs 1 callbacks:  x{results[100][2] / results[1][2]:.2f}")
    at10 = results[10][1] / results[10][0]
    verdict = "met" if at10 <= 1.0 and growth < 1.5 else "NOT met"
    print(f"target (<= SB3 at 10 callbacks, flat in not-due callbacks): {verdict}")


if __name__ == "__main__":
    main()
