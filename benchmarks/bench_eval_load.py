"""Background evaluation on a machine that other processes keep busy: does each evaluation finish
before the next one is due?

Starts `--load` busy-loop processes (`python -c "while True: pass"`, at the normal priority, as
another training or a CI job would be), then trains with the default configuration, shortened to
`--epochs` epochs and evaluating every `--every` epochs (the default configuration: 250 epochs,
every 25), and prints for each evaluation the step that triggered it, the step at which its
result came back (from `train.log`, matched to the epoch rows of `metrics.jsonl` by time), the
seconds in between, and whether it came back before the next trigger. Triggers dropped because
an evaluation was still running (`evaluation.async_policy: skip`) are counted. The load starts
before training and stops after it.

Target: every evaluation comes back before the next is due, and none is skipped.

Run: `.venv/bin/python benchmarks/bench_eval_load.py [--load 2] [--epochs 100] [--every 25]
[--set evaluation.worker_nice=19]`
"""

from __future__ import annotations

import argparse
import bisect
import os
import re
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import keisei  # noqa: F401  (first: its OpenMP wait policy applies to torch)
from keisei.checkpoint.run_layout import RunLayout
from keisei.log import read_metrics
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer

_RESULT = re.compile(
    r"^(\S+ \S+) INFO\s+keisei\.trainer: AsyncEvaluationCallback: step (\d+): (\d+) games"
)


def start_load(count: int) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]


def stop_load(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.kill()
    for process in processes:
        process.wait()


def evaluations(run_dir: Path) -> tuple[list[tuple[int, int, float, int]], int]:
    """(trigger step, step its result came back at, seconds in between, games) of each
    evaluation, and the number of triggers skipped."""
    layout = RunLayout(run_dir)
    rows = read_metrics(layout.metrics)
    epochs = sorted((float(r["time"]), int(r["step"])) for r in rows if "ppo/policy_loss" in r)
    times = [t for t, _ in epochs]
    at_step = {step: t for t, step in epochs}
    skipped = max((int(r["evaluation/skipped"]) for r in rows if "evaluation/skipped" in r),
                  default=0)  # fmt: skip
    found = []
    for line in layout.log.read_text(encoding="utf-8").splitlines():
        match = _RESULT.match(line)
        if match is None:
            continue
        logged = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        trigger = int(match.group(2))
        epoch = bisect.bisect_right(times, logged) - 1  # the epoch whose callbacks reported it
        back = epochs[max(epoch, 0)][1]
        found.append((trigger, back, logged - at_step.get(trigger, logged), int(match.group(3))))
    return found, skipped


def load_average() -> str:
    return " ".join(f"{value:.1f}" for value in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--load", type=int, default=2, help="busy-loop processes beside training")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--every", type=int, default=25, help="evaluate every N epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    probe = plan_run(None, args.overrides, "probe", None).config
    steps_per_epoch = probe.training.steps_per_epoch
    interval = steps_per_epoch * args.every
    print(f"load average before: {load_average()} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory() as root:
        overrides = [
            *args.overrides,
            f"logging.model_dir={root}",
            f"training.total_timesteps={steps_per_epoch * args.epochs}",
            f"evaluation.evaluation_interval_timesteps={interval}",
            "logging.tensorboard=false",
        ]
        plan = plan_run(None, overrides, "loaded", None)
        load = start_load(args.load)
        try:
            started = time.monotonic()
            trainer = Trainer(plan)
            trainer.train()
            seconds = time.monotonic() - started
            during = load_average()
        finally:
            stop_load(load)
        found, skipped = evaluations(plan.run_dir)
        kept = RunLayout(plan.run_dir).checkpoints.glob("step_*")
        sizes = [sum(f.stat().st_size for f in c.iterdir() if f.is_file()) for c in kept]
    config = trainer.config.evaluation
    print(f"{args.epochs * steps_per_epoch} steps in {seconds:.0f} s beside {args.load} busy "
          f"processes (load average at the end: {during}); an evaluation every {interval} steps "
          f"({config.num_games} games, worker nice {config.worker_nice}, policy "
          f"{config.async_policy})")  # fmt: skip
    print(f"{'trigger':>9}{'back at':>10}{'seconds':>9}{'games':>7}   before the next trigger")
    total = args.epochs * steps_per_epoch
    for trigger, back, waited, games in found:
        on_time = "yes" if back <= trigger + interval else "NO"
        if trigger + interval > total:
            on_time += " (none due: collected at the end of training)"
        print(f"{trigger:>9}{back:>10}{waited:>9.1f}{games:>7}   {on_time}")
    due = args.epochs // args.every
    late = sum(back > trigger + interval for trigger, back, _, _ in found)
    met = not late and not skipped and len(found) == due
    print(f"checkpoints kept: {len(sizes)}, {sum(sizes) / 2**20:.1f} MiB "
          f"(checkpoint.keep_last {trainer.config.checkpoint.keep_last}, keep_rated "
          f"{trainer.config.checkpoint.keep_rated})")
    print(f"{len(found)} of {due} evaluations came back, {late} late, {skipped} triggers skipped "
          f"(target: all back in time, none skipped: {'met' if met else 'NOT met'})")


if __name__ == "__main__":
    main()
