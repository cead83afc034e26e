"""Per-step dispatch cost of `CallbackManager.execute_step_callbacks`, now and before.

Measures the manager with 1, 10 and 100 registered periodic callbacks of which none is due, and
with exactly one due, beside Stable-Baselines3's `CallbackList` dispatching the same number of
no-op callbacks. The same measurement runs, in the same invocation, on the `keisei/` package of an
earlier revision (`--baseline-rev`, default 27fc324, the commit before the callback system was
reshaped), extracted with `git archive REV keisei | tar -x -C TMP` and imported in a subprocess
with `PYTHONPATH=TMP`; the current tree is measured the same way, in its own subprocess, and the
two alternate for `--rounds` rounds. Figures are medians, in nanoseconds per dispatch.

Targets: ours costs no more than SB3's at 10 callbacks; ours does not grow with the number of
callbacks that are not due; dispatch is no slower than before (after/before <= 1.1).

Run: `make bench` or `.venv/bin/python benchmarks/bench_callbacks.py` (needs the `bench` extra).
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
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
TOTALS = (1, 10, 100)
DEFAULT_BASELINE = "27fc324"
REPO = Path(__file__).resolve().parents[1]


# Several callbacks of one class need their own state keys now; the baseline has no such argument.
KEYED = "state_key" in inspect.signature(Callback.__init__).parameters


class Periodic(Callback):
    """A periodic callback whose work is nothing: what dispatch alone costs."""

    def __init__(self, interval: int, index: int) -> None:
        if KEYED:
            super().__init__(state_key=str(index))
        else:
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
    """Median ns per `execute_step_callbacks` call of whichever `keisei` is imported."""
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
        manager.add_callback(Periodic(interval, i))
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


def measure_only() -> None:
    """`--measure-only`: measure the imported `keisei` and print the figures as JSON."""
    import keisei

    logging.getLogger("keisei").setLevel(logging.WARNING)
    figures = {
        str(total): {"none_due": ours(total, due=0), "one_due": ours(total, due=1)}
        for total in TOTALS
    }
    print(json.dumps({"keisei": str(Path(keisei.__file__).resolve()), "figures": figures}))


def extract(rev: str, into: Path) -> str | None:
    """Extract `keisei/` of `rev` into `into`; None on success, else why it failed."""
    if shutil.which("git") is None or shutil.which("tar") is None:
        return "git or tar is not installed"
    archive = subprocess.run(
        ["git", "archive", "--format=tar", rev, "keisei"], cwd=REPO, capture_output=True
    )
    if archive.returncode != 0:
        return f"git archive {rev} failed: {archive.stderr.decode(errors='replace').strip()}"
    untar = subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout)
    if untar.returncode != 0 or not (into / "keisei" / "__init__.py").is_file():
        return f"extracting keisei/ of {rev} into {into} failed"
    return None


def measure_in_subprocess(package_root: Path) -> dict[str, dict[str, float]]:
    """Run `--measure-only` with `PYTHONPATH=package_root`; check it imported that `keisei`."""
    env = {**os.environ, "PYTHONPATH": str(package_root)}
    done = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--measure-only"],
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if done.returncode != 0:
        raise RuntimeError(f"measuring {package_root} failed:\n{done.stderr}")
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    imported = Path(answer["keisei"])
    if not imported.is_relative_to(package_root.resolve()):
        raise RuntimeError(f"asked to measure {package_root}, but it imported {imported}")
    return answer["figures"]


def medians(runs: list[dict[str, dict[str, float]]]) -> dict[int, dict[str, float]]:
    return {
        total: {
            kind: statistics.median(run[str(total)][kind] for run in runs)
            for kind in ("none_due", "one_due")
        }
        for total in TOTALS
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline-rev", default=DEFAULT_BASELINE, help="git revision to compare")
    parser.add_argument("--rounds", type=int, default=3, help="before/after subprocess pairs")
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        measure_only()
        return

    rounds = max(1, args.rounds)
    with tempfile.TemporaryDirectory(prefix="keisei-baseline-") as tmp:
        baseline_root = Path(tmp)
        problem = extract(args.baseline_rev, baseline_root)
        if problem is not None:
            print(f"no baseline: {problem}; showing the current figures only")
        before_runs: list[dict[str, dict[str, float]]] = []
        after_runs: list[dict[str, dict[str, float]]] = []
        for _ in range(rounds):  # alternate, so drift in the machine's speed hits both alike
            if problem is None:
                before_runs.append(measure_in_subprocess(baseline_root))
            after_runs.append(measure_in_subprocess(REPO))
    sb3 = {total: stable_baselines3(total) for total in TOTALS}
    after = medians(after_runs)
    before = medians(before_runs) if before_runs else None

    print(
        f"dispatch cost, ns per call (median over {rounds} subprocess runs, each the median of "
        f"{REPEATS} x {CALLS:,} calls)"
    )
    if before is not None:
        print(f"before: keisei/ of {args.baseline_rev}; after: the working tree")
        header = (
            f"{'callbacks':>9} {'SB3 no-op':>10} {'before none-due':>16} {'after none-due':>15} "
            f"{'ratio':>6} {'before one-due':>15} {'after one-due':>14} {'ratio':>6}"
        )
        print(header)
        for total in TOTALS:
            b, a = before[total], after[total]
            print(
                f"{total:>9} {sb3[total]:>10.0f} {b['none_due']:>16.0f} {a['none_due']:>15.0f} "
                f"{a['none_due'] / b['none_due']:>6.2f} {b['one_due']:>15.0f} "
                f"{a['one_due']:>14.0f} {a['one_due'] / b['one_due']:>6.2f}"
            )
        print("ratio: after / before (below 1: faster now)")
    else:
        print(f"{'callbacks':>9} {'SB3 no-op':>10} {'none due':>9} {'one due':>8}")
        for total in TOTALS:
            a = after[total]
            print(f"{total:>9} {sb3[total]:>10.0f} {a['none_due']:>9.0f} {a['one_due']:>8.0f}")

    growth = after[100]["none_due"] / after[1]["none_due"]
    print(f"\nafter, none due, 100 vs 1 callbacks: x{growth:.2f} (flat means it does not grow)")
    one_growth = after[100]["one_due"] / after[1]["one_due"]
    print(f"after, one due, 100 vs 1 callbacks:  x{one_growth:.2f}")
    at10 = after[10]["none_due"] / sb3[10]
    verdict = "met" if at10 <= 1.0 and growth < 1.5 else "NOT met"
    print(f"target (<= SB3 at 10 callbacks, flat in not-due callbacks): {verdict}")
    if before is not None:
        worst = max(after[t]["none_due"] / before[t]["none_due"] for t in TOTALS)
        verdict = "met" if worst <= 1.1 else "NOT met"
        print(f"target (none due, after/before <= 1.1 at every size; worst {worst:.2f}): {verdict}")


if __name__ == "__main__":
    main()
