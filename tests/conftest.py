"""Settings for the whole suite: one CPU thread for torch, here and in the processes tests start.

The tests' networks are tiny, and the suite shares its cores (pytest-xdist's other worker, the
processes tests start, other work on the machine): there, OpenMP's threads wait on each other at
every barrier, and a PPO update of the bf16 test ran 14x slower with 2 threads than with 1 (3x in
float32). Processes the tests start inherit `OMP_NUM_THREADS`; a value the caller set wins.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

# keisei first: it sets OpenMP's wait policy, which torch's OpenMP reads once, when it loads.
import keisei  # noqa: F401

# isort: split
import torch

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
