"""Keisei: a Shogi agent trained by self-play PPO."""

import os

# OpenMP threads that busy-wait between parallel regions hold the CPU time that background
# evaluation (a process at a lower priority) runs on: with the default policy an evaluation of the
# default run took minutes instead of seconds. Sleeping at once costs training nothing measurable
# (benchmarks/bench_eval.py). It must be set before torch loads its OpenMP runtime; a value the
# user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
