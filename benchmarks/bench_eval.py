"""Training throughput with no evaluation, synchronous evaluation and background evaluation.

Real training runs at the default configuration (its evaluation interval, about 25 epochs, and its
20 games) in one process: (1) evaluation off, (2) evaluation in the training loop, (3) evaluation
in a background worker process; the three modes take turns, `--repeats` times, and the median of
each is reported (the machine is noisy). Throughput is environment steps per second from the end
of the first epoch (warm-up) to the end of the last one; the background run's final wait for
running evaluations happens after that and is not counted.

Evaluation plays its default opponents: random, a past checkpoint from the pool, and the ladder
references around the agent (`evaluation.reference_opponents`, default 2; a fresh run starts at
the bottom of the calibrated ladder: Fairy-Stockfish at Skill Level -20 at 700 and 10,000 nodes
a move) when Fairy-Stockfish is installed; the games played against each opponent are
counted and printed. `--references 0` measures without them.

Target: with background evaluation, training keeps at least 85% of its no-evaluation throughput.

Run: `.venv/bin/python benchmarks/bench_eval.py [--epochs 50] [--every 25] [--games 20]
[--references N]`
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from collections import Counter

from keisei.checkpoint.run_layout import RunLayout
from keisei.config import check_opponent_spec
from keisei.evaluation.ratings.elo import EloRegistry
from keisei.training.callbacks import Callback, TrainerView
from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer


class EpochClock(Callback):
    """Notes when each epoch's callbacks ran."""

    def __init__(self) -> None:
        super().__init__()
        self.marks: list[tuple[int, float]] = []

    def on_step_end(self, trainer: TrainerView) -> None:
        self.marks.append((trainer.global_timestep, time.perf_counter()))


def opponents_played(run_dir: str) -> Counter[str]:
    """Evaluation games per opponent in the run's Elo registry."""
    played: Counter[str] = Counter()
    database = RunLayout(run_dir).elo_database
    if database.exists():
        with EloRegistry(database) as registry:
            kinds = {p.name: p.kind for p in registry.players()}
            for game in registry.games():
                opponent = game.white if game.subject == game.black else game.black
                played[opponent if kinds.get(opponent) != "agent" else "pool"] += 1
    return played


def run(mode: str, root: str, args: argparse.Namespace, played: Counter[str]) -> float:
    probe = plan_run(None, args.overrides, "probe", None).config
    steps_per_epoch = probe.training.steps_per_epoch
    overrides = [
        *args.overrides,
        f"logging.model_dir={root}",
        f"training.total_timesteps={steps_per_epoch * args.epochs}",
        f"training.checkpoint_interval_timesteps={steps_per_epoch * args.epochs}",
        f"evaluation.evaluation_interval_timesteps={steps_per_epoch * args.every}",
        f"evaluation.num_games={args.games}",
        f"evaluation.enable_periodic_evaluation={str(mode != 'none').lower()}",
        f"evaluation.async_mode={str(mode == 'background').lower()}",
        "logging.tensorboard=false",
    ]
    if args.references is not None:
        overrides.append(f"evaluation.reference_opponents={args.references}")
    trainer = Trainer(plan_run(None, overrides, mode, None))
    clock = EpochClock()
    trainer.manager.add_callback(clock)
    trainer.train()
    played.update(opponents_played(str(trainer.run_dir)))
    (first_step, first_time), (last_step, last_time) = clock.marks[0], clock.marks[-1]
    return (last_step - first_step) / (last_time - first_time)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--every", type=int, default=25, help="evaluate every N epochs")
    parser.add_argument("--games", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--references", type=int, default=None,
                        help="evaluation.reference_opponents (default: the config's)")  # fmt: skip
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    logging.getLogger("keisei").setLevel(logging.WARNING)
    samples: dict[str, list[float]] = {"none": [], "sync": [], "background": []}
    played: dict[str, Counter[str]] = {mode: Counter() for mode in samples}
    with tempfile.TemporaryDirectory() as root:
        for repeat in range(args.repeats):
            for mode in samples:
                samples[mode].append(run(mode, f"{root}/{repeat}", args, played[mode]))
    results = {mode: statistics.median(rates) for mode, rates in samples.items()}
    base = results["none"]
    print(
        f"{args.epochs} epochs, evaluation of {args.games} games every {args.every} epochs, "
        f"median of {args.repeats} runs per mode (modes take turns)"
    )
    print(f"{'evaluation':<12}{'steps/s':>10}{'vs none':>9}   runs")
    for mode, rate in results.items():
        runs = ", ".join(f"{r:.0f}" for r in samples[mode])
        print(f"{mode:<12}{rate:>10.0f}{rate / base:>9.1%}   {runs}")
    probe = plan_run(None, args.overrides, "probe", None).config
    references = args.references
    if references is None:
        references = probe.evaluation.reference_opponents
    engines: list[str] = []
    for reference in probe.ladder.references:
        try:
            check_opponent_spec(reference.opponent)
        except ValueError:
            engines.append(reference.name)
    print(f"reference opponents: {references}"
          + (f" (not installed, skipped: {', '.join(engines)})" if engines else ""))  # fmt: skip
    for mode in ("sync", "background"):
        games = ", ".join(f"{name} {count}" for name, count in played[mode].most_common())
        print(f"games played ({mode}, all runs): {games or 'none'}")
    kept = results["background"] / base
    print(
        f"background keeps {kept:.1%} of the no-evaluation throughput "
        f"(target >= 85%: {'met' if kept >= 0.85 else 'NOT met'})"
    )


if __name__ == "__main__":
    main()
