"""Whole-loop training throughput of `keisei train` with one rank against several ranks.

Each configuration is the real command in its own temporary run directory, at the default
config with periodic evaluation and TensorBoard off: 1 rank is `python -m keisei train` itself
(no launcher), N ranks `python -m keisei train --nproc-per-node N`. Every rank gets one torch
thread (`OMP_NUM_THREADS=1` for both, so the comparison is like for like: the work is the
network's). Throughput is read from the run's `metrics.jsonl`: environment steps between the
per-epoch rows over the wall-clock time between them (each row carries `time`), everything an
epoch does included (self-play, update, gathering the ranks' states, callbacks), the first
`--warmup` epochs skipped. Configurations take turns, `--repeats` times; the figure of a run is
the median of its epochs, the figure of a configuration the median of its runs ("overall": all
steps after warm-up over their wall time). The 1-rank run is the baseline, always measured.

Targets: N ranks reach >= 0.8 N times the 1-rank throughput on N free CPU cores (1.6x for 2),
>= 0.85 N on N GPUs (`--device cuda`). Exits 1 if a run failed.

Run: `.venv/bin/python benchmarks/bench_distributed.py [--ranks 1 2] [--timesteps 61440]
[--repeats 1] [--device cpu]`
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from keisei.checkpoint.run_layout import RunLayout

RATE_KEY = "train/steps_per_second"  # present in the one row the trainer writes per epoch


class RunFailed(RuntimeError):
    pass


def command(ranks: int, root: Path, args: argparse.Namespace) -> list[str]:
    overrides = [
        *args.overrides,
        f"logging.model_dir={root}",
        f"training.total_timesteps={args.timesteps}",
        f"training.device={args.device}",
        "evaluation.enable_periodic_evaluation=false",
        "logging.tensorboard=false",
    ]
    argv = [sys.executable, "-m", "keisei", "train", "--no-live", "--run-name", "bench"]
    if ranks > 1:
        argv += ["--nproc-per-node", str(ranks)]
    return argv + [item for override in overrides for item in ("--set", override)]


def epoch_rows(metrics: Path) -> list[tuple[int, float]]:
    rows = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if RATE_KEY in row:
            rows.append((int(row["step"]), float(row["time"])))
    return rows


def run(ranks: int, root: Path, args: argparse.Namespace) -> tuple[float, float]:
    """(median steps/s of the epochs after warm-up, steps/s over all of them) of one run."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    log = root / "output.log"
    root.mkdir(parents=True)
    with log.open("wb") as out:
        argv = command(ranks, root, args)
        try:
            done = subprocess.run(argv, env=env, stdout=out, stderr=out, timeout=args.timeout)
            status = f"exit status {done.returncode}" if done.returncode else ""
        except subprocess.TimeoutExpired:
            status = f"still running after {args.timeout:g} s (--timeout)"
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    if status:
        raise RunFailed(f"{ranks} rank(s): {status}\n{tail}")
    rows = epoch_rows(RunLayout(root / "bench").metrics)[max(args.warmup - 1, 0) :]
    if len(rows) < 3:
        raise RunFailed(f"{ranks} rank(s): too few epochs after warm-up; raise --timesteps")
    rates = [(s1 - s0) / (t1 - t0) for (s0, t0), (s1, t1) in zip(rows, rows[1:], strict=False)]
    overall = (rows[-1][0] - rows[0][0]) / (rows[-1][1] - rows[0][1])
    return statistics.median(rates), overall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--ranks", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--timesteps", type=int, default=61_440, help="per run (30 epochs)")
    parser.add_argument("--warmup", type=int, default=2, help="epochs not counted")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds per run")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    args = parser.parse_args()
    configs = sorted({1, *args.ranks})
    samples: dict[int, list[tuple[float, float]]] = {n: [] for n in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for n in configs:
                try:
                    samples[n].append(run(n, Path(tmp, f"{n}-ranks-{repeat}"), args))
                except RunFailed as exc:
                    print(f"run failed: {exc}", file=sys.stderr)
                    return 1
    median = {n: statistics.median(r for r, _ in runs) for n, runs in samples.items()}
    overall = {n: statistics.median(o for _, o in runs) for n, runs in samples.items()}
    print(
        f"keisei train, default model, {args.timesteps:,} steps per run on {args.device} "
        f"(first {args.warmup} epochs skipped), one torch thread per rank, "
        f"median of {args.repeats} run(s) per configuration (configurations take turns)"
    )
    print(f"{'ranks':<7}{'steps/s':>9}{'overall':>9}{'vs 1 rank':>11}   runs")
    for n in configs:
        runs = ", ".join(f"{r:.0f}" for r, _ in samples[n])
        print(f"{n:<7}{median[n]:>9.0f}{overall[n]:>9.0f}{median[n] / median[1]:>10.2f}x   {runs}")
    per_rank = 0.85 if args.device == "cuda" else 0.8
    for n in configs[1:]:
        ratio, target = median[n] / median[1], per_rank * n
        where = f"{n} GPUs" if args.device == "cuda" else f"{n} free CPU cores"
        verdict = "met" if ratio >= target else "NOT met"
        print(f"{n} ranks: {ratio:.2f}x one rank (target >= {target:.2f}x on {where}: {verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
