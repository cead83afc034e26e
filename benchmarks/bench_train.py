"""Training throughput at the default configuration, and where the wall time goes.

Runs the real trainer (default config, periodic evaluation off so that only training is timed)
for a few epochs and splits the wall time into: game stepping (`env`), batched inference
(`inference`: forward pass and sampling), rollout buffer and GAE (`buffer`), the PPO update
(`ppo`: forward, backward, optimizer) and callbacks (`callbacks`). The network's work is
`inference` + `ppo`; the target is that everything else takes at most 20% of wall time.

Run: `.venv/bin/python benchmarks/bench_train.py [--epochs 8] [--set key=value ...]`
"""

from __future__ import annotations

import argparse
import logging
import resource
import tempfile
import time

from keisei.training.run_dir import plan_run
from keisei.training.trainer import Trainer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    logging.getLogger("keisei").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory() as root:
        probe = plan_run(None, args.overrides, "probe", None)
        steps = probe.config.training.steps_per_epoch * args.epochs
        overrides = [
            *args.overrides,
            f"logging.model_dir={root}",
            f"training.total_timesteps={steps}",
            "evaluation.enable_periodic_evaluation=false",
            "logging.tensorboard=false",
        ]
        trainer = Trainer(plan_run(None, overrides, "bench", None))
        started = time.perf_counter()
        trainer.train()
        wall = time.perf_counter() - started
    sections = dict(trainer.timer.seconds)
    sections["other"] = max(wall - sum(sections.values()), 0.0)
    network = sections.get("inference", 0.0) + sections.get("ppo", 0.0)
    print(f"default config, {args.epochs} epochs = {steps:,} environment steps in {wall:.1f} s")
    print(f"throughput: {steps / wall:,.0f} environment steps/s (PPO update included)")
    print(f"{'section':<12}{'seconds':>10}{'share':>9}")
    for name in ("env", "inference", "buffer", "ppo", "callbacks", "other"):
        seconds = sections.get(name, 0.0)
        print(f"{name:<12}{seconds:>10.2f}{seconds / wall:>9.1%}")
    outside = 1 - network / wall
    print(
        f"not network work (env + buffer + callbacks + other): {outside:.1%} (target <= 20%: "
        f"{'met' if outside <= 0.20 else 'NOT met'})"
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak resident memory: {peak_mib:,.0f} MiB")


if __name__ == "__main__":
    main()
